"""A process supervisor for the local stack (Prefect server, Venice emulator, runner).

The demo (`deployments/demo.py`) and the end-to-end tests (`tests/e2e/`) build
the same stack through these functions, so the tests exercise exactly what
`make demo` runs. Every process is started in its own session with its output
in a log file, and is recorded (pid and command line) in a JSON state file, so
a later `demo.py --stop` ends precisely the processes this module started.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

DEPLOYMENTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = DEPLOYMENTS_DIR.parent
BIN_DIR = Path(sys.executable).parent

EMULATOR_API_KEY = "emulator-key"
STATE_FILE_NAME = "stack.json"


class StackError(RuntimeError):
    """A process of the local stack failed to start or to answer; the message names its log."""


@dataclass(frozen=True)
class StackConfig:
    """Where the stack keeps its files and how it is started.

    Args:
        root: Folder for the Prefect home, logs, videos and the state file.
        server_port: Port of the Prefect server (API and UI); 0 picks a free one.
        emulator_port: Port of the Venice emulator's API; 0 picks a free one.
        time_scale: Emulator time scale; 0.05 makes a 60 s job take 3 s.
        seed: Emulator random seed, so a demo run looks the same each time.
        daily_interval: Seconds between runs of the daily deployment instead of its
            cron schedule; tests use a short interval to see a scheduled run.
        scheduler_loop_seconds: How often the server's scheduler creates runs.
        startup_timeout: Seconds to wait for each process to answer.
    """

    root: Path
    server_port: int = 0
    emulator_port: int = 0
    time_scale: float = 0.05
    seed: int = 0
    daily_interval: float | None = None
    scheduler_loop_seconds: float | None = None
    startup_timeout: float = 90.0

    @property
    def prefect_home(self) -> Path:
        """The private PREFECT_HOME: SQLite database, profiles, result storage."""
        return self.root / "prefect-home"

    @property
    def logs(self) -> Path:
        """Folder of the processes' log files."""
        return self.root / "logs"

    @property
    def videos(self) -> Path:
        """Folder the served flows write their MP4 files into."""
        return self.root / "videos"

    @property
    def state_file(self) -> Path:
        """JSON record of the running processes and their URLs."""
        return self.root / STATE_FILE_NAME


@dataclass(frozen=True)
class ManagedProcess:
    """A process this module started: enough to find its log and to stop it safely."""

    name: str
    pid: int
    argv: list[str]
    log: str


@dataclass
class Stack:
    """A running stack: its URLs and the processes that serve them."""

    api_url: str
    ui_url: str
    emulator_url: str
    emulator_api_key: str
    prefect_home: str
    videos: str
    processes: list[ManagedProcess] = field(default_factory=list)

    def flow_run_url(self, flow_run_id: object) -> str:
        """Return the Prefect UI page of one flow run."""
        return f"{self.ui_url}/runs/flow-run/{flow_run_id}"


# Ports and HTTP ------------------------------------------------------------


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Tell whether `port` on 127.0.0.1 can be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            # As servers bind: a port held only by closing connections counts as free.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def choose_port(preferred: int) -> int:
    """Return `preferred` when it is free, else a free port (0 means any free port)."""
    if preferred and port_is_free(preferred):
        return preferred
    return free_port()


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """Tell whether a GET of `url` answers 2xx."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 (loopback URL)
            return 200 <= int(answer.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_until_answering(process: ManagedProcess, url: str, timeout: float) -> None:
    """Wait until `url` answers, failing early with the log's name if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if http_ok(url):
            return
        if not is_running(process):
            raise StackError(f"{process.name} exited during startup; see {process.log}")
        time.sleep(0.25)
    raise StackError(
        f"{process.name} did not answer {url} within {timeout:.0f} s; see {process.log}"
    )


# Processes -----------------------------------------------------------------


def base_environment(config: StackConfig) -> dict[str, str]:
    """Return the environment of every stack process: a private Prefect home, no telemetry.

    Inherited PREFECT_* variables are dropped so that a profile or API URL of the
    caller's shell can never point the stack at another server.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(config.prefect_home),
        PREFECT_PROFILES_PATH=str(config.prefect_home / "profiles.toml"),
        PREFECT_LOCAL_STORAGE_PATH=str(config.prefect_home / "storage"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT="false",
        # The stack's job journal and pacing accounts stay in its own folder too.
        PREFECT_VENICE_HOME=str(config.root / "venice-home"),
        PYTHONUNBUFFERED="1",
    )
    return env


def client_environment(config: StackConfig, api_url: str) -> dict[str, str]:
    """Return the environment of a process that talks to the stack's Prefect API."""
    env = base_environment(config)
    env.update(
        PREFECT_API_URL=api_url,
        # The flow's return value is read back by the demo and the tests.
        PREFECT_RESULTS_PERSIST_BY_DEFAULT="true",
        # Pick up new runs within two seconds instead of ten.
        PREFECT_RUNNER_POLL_FREQUENCY="2",
    )
    return env


# Processes this interpreter started, by pid. Processes recorded by an earlier command
# (the demo's stack.json) are recognised by their command line instead.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def start_process(
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    config: StackConfig,
    cwd: Path | None = None,
) -> ManagedProcess:
    """Start `argv` in its own session, its output going to `<logs>/<name>.log`."""
    config.logs.mkdir(parents=True, exist_ok=True)
    log_path = config.logs / f"{name}.log"
    with log_path.open("ab") as log:
        popen = subprocess.Popen(  # noqa: S603 (our own argv, no shell)
            list(argv),
            env=dict(env),
            cwd=str(cwd or config.root),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own session: the stack outlives the demo command, and stopping
            # it ends the process group (server workers, flow-run subprocesses).
            start_new_session=True,
        )
    _CHILDREN[popen.pid] = popen
    return ManagedProcess(name=name, pid=popen.pid, argv=list(argv), log=str(log_path))


def _command_line(pid: int) -> list[str] | None:
    """Return the command line of `pid`, or None when no such process runs."""
    proc = Path(f"/proc/{pid}/cmdline")
    if proc.parent.parent.is_dir():
        try:
            raw = proc.read_bytes()
        except OSError:
            return None
        return [part.decode(errors="replace") for part in raw.split(b"\0") if part]
    try:
        out = subprocess.run(  # noqa: S603
            ["ps", "-o", "command=", "-p", str(pid)],  # noqa: S607 (ps on PATH is fine)
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return None
    return out.stdout.split() or None


def is_running(process: ManagedProcess) -> bool:
    """Tell whether the recorded process still runs (and is ours, not a reused pid)."""
    child = _CHILDREN.get(process.pid)
    if child is not None:
        # Started by this interpreter: its own handle knows, and reaps it.
        return child.poll() is None
    with contextlib.suppress(ChildProcessError):
        # Reap it if it is our own child that exited, so it stops being a zombie.
        os.waitpid(process.pid, os.WNOHANG)
    command = _command_line(process.pid)
    if not command:
        return False
    return all(part in command for part in process.argv[1:])


def stop_process(process: ManagedProcess, timeout: float = 15.0) -> bool:
    """Stop the process group of `process` (TERM, then KILL); False if it was not running."""
    if not is_running(process):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_running(process):
            break
        time.sleep(0.2)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    # Leftovers of the group (e.g. a flow-run subprocess) get the same treatment.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    return True


# The three services --------------------------------------------------------


def start_server(config: StackConfig, port: int) -> ManagedProcess:
    """Start `prefect server start` on 127.0.0.1:`port` with SQLite under the Prefect home."""
    env = base_environment(config)
    env.update(
        PREFECT_SERVER_LOGGING_LEVEL="WARNING",
        PREFECT_SERVER_API_HOST="127.0.0.1",
        PREFECT_SERVER_API_PORT=str(port),
        # The UI's own idea of the API; otherwise it calls the default port 4200.
        PREFECT_UI_API_URL=f"http://127.0.0.1:{port}/api",
    )
    if config.scheduler_loop_seconds is not None:
        env["PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS"] = str(config.scheduler_loop_seconds)
    argv = [str(BIN_DIR / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    return start_process("prefect-server", argv, env, config)


def start_emulator(config: StackConfig, port: int) -> ManagedProcess:
    """Start the Venice emulator (`prefect-venice emulator`) on 127.0.0.1:`port`."""
    argv = [
        sys.executable,
        "-m",
        "prefect_venice.emulator",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--api-key",
        EMULATOR_API_KEY,
        "--time-scale",
        str(config.time_scale),
        "--seed",
        str(config.seed),
    ]
    return start_process("emulator", argv, base_environment(config), config)


def start_runner(config: StackConfig, api_url: str) -> ManagedProcess:
    """Start `deployments/serve.py`, which creates the deployments and executes their runs."""
    argv = [sys.executable, str(DEPLOYMENTS_DIR / "serve.py"), "--output-dir", str(config.videos)]
    if config.daily_interval is not None:
        argv += ["--daily-interval", str(config.daily_interval)]
    # The runner resolves file entrypoints against its working directory.
    return start_process(
        "serve", argv, client_environment(config, api_url), config, cwd=DEPLOYMENTS_DIR
    )


def start_services(config: StackConfig) -> Stack:
    """Start the Prefect server and the emulator, and wait until both answer."""
    for folder in (config.root, config.prefect_home, config.logs, config.videos):
        folder.mkdir(parents=True, exist_ok=True)
    server_port = choose_port(config.server_port)
    emulator_port = choose_port(config.emulator_port)
    while emulator_port == server_port:
        emulator_port = free_port()
    server = start_server(config, server_port)
    emulator = start_emulator(config, emulator_port)
    ui_url = f"http://127.0.0.1:{server_port}"
    stack = Stack(
        api_url=f"{ui_url}/api",
        ui_url=ui_url,
        emulator_url=f"http://127.0.0.1:{emulator_port}/api/v1",
        emulator_api_key=EMULATOR_API_KEY,
        prefect_home=str(config.prefect_home),
        videos=str(config.videos),
        processes=[server, emulator],
    )
    save_state(config, stack)
    try:
        wait_until_answering(
            emulator, f"http://127.0.0.1:{emulator_port}/_emulator/ledger", config.startup_timeout
        )
        wait_until_answering(server, f"{stack.api_url}/health", config.startup_timeout)
    except StackError:
        stop_stack(config)
        raise
    return stack


def add_runner(config: StackConfig, stack: Stack) -> ManagedProcess:
    """Start the serve process for `stack` and record it."""
    runner = start_runner(config, stack.api_url)
    stack.processes.append(runner)
    save_state(config, stack)
    return runner


# State file ----------------------------------------------------------------


def save_state(config: StackConfig, stack: Stack) -> None:
    """Record the running stack in its state file."""
    config.state_file.write_text(json.dumps(asdict(stack), indent=2) + "\n")


def load_state(config: StackConfig) -> Stack | None:
    """Read the recorded stack, or None when there is no readable record."""
    try:
        raw = json.loads(config.state_file.read_text())
        processes = [ManagedProcess(**item) for item in raw.pop("processes")]
        return Stack(**raw, processes=processes)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def stop_stack(config: StackConfig) -> list[str]:
    """Stop every recorded process, newest first; return the names of those that ran."""
    stack = load_state(config)
    if stack is None:
        return []
    stopped = [p.name for p in reversed(stack.processes) if stop_process(p)]
    config.state_file.unlink(missing_ok=True)
    return stopped


@contextlib.contextmanager
def prefect_client_settings(config: StackConfig, stack: Stack) -> Iterator[None]:
    """Point this process's Prefect client at the stack (API URL, home, result storage)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_HOME,
        PREFECT_LOCAL_STORAGE_PATH,
        PREFECT_SERVER_ANALYTICS_ENABLED,
    )
    from prefect.settings.context import temporary_settings

    with temporary_settings(
        updates={
            PREFECT_API_URL: stack.api_url,
            PREFECT_HOME: config.prefect_home,
            PREFECT_LOCAL_STORAGE_PATH: config.prefect_home / "storage",
            PREFECT_SERVER_ANALYTICS_ENABLED: False,
        }
    ):
        try:
            yield
        finally:
            # The event and log workers are process-wide and keep the API URL they started
            # with: stop them, or later events of this process go to this stack's server.
            with contextlib.suppress(Exception):
                APILogWorker.drain_all(timeout=10)
            with contextlib.suppress(Exception):
                EventsWorker.drain_all(timeout=10)
