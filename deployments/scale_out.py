"""Scale out on one machine with local processes: PostgreSQL, a Prefect server, N workers.

    python deployments/scale_out.py up --root .scale-out --workers 3 --emulator
    python deployments/scale_out.py fire --root .scale-out --runs 60
    python deployments/scale_out.py down --root .scale-out

The same recipe as `deployments/compose.yaml` (containers) and docs/deployments.md
("Scaling out"), step by step, each step a command a user would type:

1. **PostgreSQL** (Debian's `postgresql` package): a cluster of its own under the
   root folder, on loopback, `max_connections` sized for the server's pool.
2. **Prefect server on it**, its database pool sized
   (`PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_SIZE` / `_MAX_OVERFLOW`), and its lease
   repossessor run every second so that the window limits free slots on time.
3. **Work pool** `venice` (process) with a concurrency limit: the runs in flight,
   which bounds memory and CPU on the workers, not Venice's calls a minute.
4. **`prefect-venice limits`**: the two window limits that hold all workers together
   to 40 queue and 120 retrieve calls in any 61 s.
5. **`prefect-venice recovery`**: the automations that mark a run whose machine died
   Crashed (no heartbeat for 90 s) and schedule it again, so another worker resumes it.
6. **The credentials block** `venice` and **`prefect deploy`** of
   `generate-video/on-demand-pool` from `deployments/prefect.yaml`.
7. **N workers**, each standing for a machine: its own Prefect home and its own
   `PREFECT_VENICE_HOME` (pacing), but one **shared folder** for the job journal
   (`PREFECT_INTEGRATIONS_VENICE_JOURNAL_DIR`), result storage and videos, so that a
   run retried on another worker finds the job it paid for.

`--emulator` also starts the Venice emulator with its real per-minute limits (jobs
sped up by `--time-scale`) and points the block at it; without it the block uses
`VENICE_API_KEY` and the real API. Everything runs as the current user; as root,
PostgreSQL runs as the `postgres` user (it refuses root) from a folder of its own.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from supervisor import (
    BIN_DIR,
    DEPLOYMENTS_DIR,
    EMULATOR_API_KEY,
    ManagedProcess,
    StackConfig,
    StackError,
    base_environment,
    choose_port,
    free_port,
    is_running,
    start_process,
    stop_process,
    wait_until_answering,
)

POOL = "venice"
DEPLOYMENT = "generate-video/on-demand-pool"
CREDENTIALS_BLOCK = "venice"
STATE_FILE_NAME = "scale-out.json"
QUEUE_LIMIT = "venice-queue"
RETRIEVE_LIMIT = "venice-retrieve"
#: The work pool's command: the stdlib-only stub of deployments/prestart.py (no site,
#: no environment options). An absolute path: a run's process starts in a temporary
#: folder, and the checkout is at the same path on every worker (prefect.yaml's rule).
PRESTART_COMMAND = f"python3 -I -S {shlex.quote(str(DEPLOYMENTS_DIR / 'prestart.py'))} run"


class ScaleOutError(RuntimeError):
    """A step of the recipe failed; the message names the command or log to read."""


@dataclass(frozen=True)
class ScaleOutConfig:
    """How the scaled-out stack is built.

    Args:
        root: Folder of everything the stack writes (logs, homes, the shared folder).
        workers: Process workers to start, each standing for one machine.
        worker_limit: Flow runs one worker executes at once (`prefect worker start --limit`).
        pool_limit: The work pool's concurrency limit; None: workers x worker_limit.
        db_pool_size: The Prefect server's SQLAlchemy pool (connections kept open).
        db_max_overflow: Connections the server may open beyond the pool under load.
        postgres: False runs the server on SQLite (for comparison; one machine only).
        emulator: Start the Venice emulator and point the block at it.
        time_scale: The emulator's job speed (0.01: a two-minute job takes 1.2 s).
        real_time_limits: Keep the emulator's rate-limit windows in real seconds.
        window_limits: Create the global limits (`prefect-venice limits`) and use them.
        worker_query_seconds: How often a worker asks the server for runs.
        heartbeat_seconds: Flow-run heartbeat interval (the zombie automation's input).
        prestart: Start each run from a pre-started interpreter (`deployments/prestart.py`)
            beside each worker instead of a fresh `python -m prefect.engine`.
        startup_timeout: Seconds to wait for each service to answer.
    """

    root: Path
    workers: int = 3
    worker_limit: int = 10
    pool_limit: int | None = None
    db_pool_size: int = 20
    db_max_overflow: int = 30
    postgres: bool = True
    emulator: bool = False
    time_scale: float = 0.01
    real_time_limits: bool = True
    window_limits: bool = True
    worker_query_seconds: float = 1.0
    heartbeat_seconds: int = 30
    prestart: bool = True
    startup_timeout: float = 120.0

    @property
    def stack(self) -> StackConfig:
        """The supervisor's view of the root (Prefect home, logs, base environment)."""
        return StackConfig(root=self.root, time_scale=self.time_scale)

    @property
    def shared(self) -> Path:
        """The folder every worker shares: job journal, result storage, videos."""
        return self.root / "shared"

    @property
    def journal_dir(self) -> Path:
        """The shared job journal (PREFECT_INTEGRATIONS_VENICE_JOURNAL_DIR)."""
        return self.shared / "jobs"

    @property
    def videos(self) -> Path:
        """Where the runs fired by `fire` save their videos."""
        return self.shared / "videos"

    @property
    def state_file(self) -> Path:
        """The JSON record of the running stack."""
        return self.root / STATE_FILE_NAME

    def prestart_socket(self, index: int) -> Path:
        """The socket of machine `index`'s pre-started interpreter.

        A Unix socket's path must stay under about 100 bytes; a deep root gets one in a
        folder of this user's in /tmp instead (0700, see `start_prestart`), never a
        name another user could take first.
        """
        path = self.machine(index) / "prestart.sock"
        if len(str(path)) <= 100:
            return path
        digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
        folder = Path("/tmp") / f"prefect-venice-{os.geteuid()}-{digest}"  # noqa: S108
        return folder / "prestart.sock"

    def machine(self, index: int) -> Path:
        """The private folder of worker `index` (its Prefect home, pacing state)."""
        return self.root / f"machine-{index}"

    @property
    def effective_pool_limit(self) -> int:
        """The work pool's concurrency limit actually set."""
        return self.pool_limit if self.pool_limit is not None else self.workers * self.worker_limit


@dataclass
class ScaleOutStack:
    """A running scaled-out stack: URLs, processes, and what a client needs."""

    api_url: str
    ui_url: str
    database_url_redacted: str
    emulator_url: str | None
    emulator_origin: str | None
    processes: list[ManagedProcess] = field(default_factory=list)
    pg_data: str | None = None
    workers: list[str] = field(default_factory=list)

    def process(self, name: str) -> ManagedProcess:
        """Return the recorded process called `name`."""
        for process in self.processes:
            if process.name == name:
                return process
        raise KeyError(name)


# PostgreSQL ---------------------------------------------------------------


def postgres_bin() -> Path | None:
    """Return the folder of PostgreSQL's server programs (initdb, postgres), or None."""
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1].parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _as_postgres_user() -> list[str]:
    """Prefix for PostgreSQL's programs: they refuse to run as root."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _pg_folder(config: ScaleOutConfig) -> Path:
    """The cluster's folder: under the root, or (as root) one the postgres user can reach."""
    if os.geteuid() != 0:
        return config.root / "postgres"
    digest = hashlib.sha256(str(config.root.resolve()).encode()).hexdigest()[:12]
    return Path("/tmp") / f"prefect-venice-pg-{digest}"  # noqa: S108 (owned by postgres, 0700)


def _run(argv: Sequence[str], env: dict[str, str] | None = None, what: str = "") -> str:
    done = subprocess.run(  # noqa: S603 (our own argv)
        list(argv), env=env, capture_output=True, text=True, check=False, timeout=300
    )
    if done.returncode != 0:
        raise ScaleOutError(
            f"{what or argv[0]} failed ({done.returncode}): {(done.stderr or done.stdout)[-1500:]}"
        )
    return done.stdout


def start_postgres(config: ScaleOutConfig, port: int) -> tuple[ManagedProcess, str, str, Path]:
    """Create (once) and start a PostgreSQL cluster on 127.0.0.1:`port`.

    Returns the process, the server's connection URL, the same URL with the password
    hidden, and the cluster's folder.
    """
    bin_dir = postgres_bin()
    if bin_dir is None:
        raise ScaleOutError(
            "PostgreSQL's server programs are not installed (Debian: apt-get install postgresql)."
        )
    folder = _pg_folder(config)
    data = folder / "data"
    password_file = config.root / "postgres-password"
    prefix = _as_postgres_user()
    if not (data / "PG_VERSION").exists():
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        password = secrets.token_urlsafe(18)
        descriptor = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(password)
        pwfile = folder / "pwfile"
        pwfile.write_text(password + "\n")
        if prefix:
            shutil.chown(folder, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
        _run(
            [
                *prefix,
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                "prefect",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                f"--pwfile={pwfile}",
                "-E",
                "UTF8",
            ],
            what="initdb",
        )
        pwfile.unlink()
    password = password_file.read_text().strip()
    connections = 2 * (config.db_pool_size + config.db_max_overflow) + 20
    argv = [
        *prefix,
        str(bin_dir / "postgres"),
        "-D",
        str(data),
        "-p",
        str(port),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        f"unix_socket_directories={folder}",
        "-c",
        f"max_connections={connections}",
    ]
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    process = start_process("postgres", argv, env, config.stack)
    url = f"postgresql+asyncpg://prefect:{password}@127.0.0.1:{port}/prefect"
    redacted = f"postgresql+asyncpg://prefect:***@127.0.0.1:{port}/prefect"
    client_env = {**env, "PGPASSWORD": password}
    deadline = time.monotonic() + config.startup_timeout
    while True:
        probe = subprocess.run(  # noqa: S603
            [str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-U", "prefect"],
            capture_output=True,
            check=False,
        )
        if probe.returncode == 0:
            break
        if not is_running(process) or time.monotonic() > deadline:
            raise ScaleOutError(f"PostgreSQL did not start; see {process.log}")
        time.sleep(0.3)

    def psql(*args: str) -> str:
        program = str(bin_dir / "psql") if (bin_dir / "psql").exists() else "psql"
        connection = ["-h", "127.0.0.1", "-p", str(port), "-U", "prefect", "-d", "postgres"]
        return _run([program, *connection, *args], env=client_env, what="psql")

    if psql("-tAc", "SELECT 1 FROM pg_database WHERE datname = 'prefect'").strip() != "1":
        psql("-c", "CREATE DATABASE prefect")
    return process, url, redacted, folder


# Prefect server, emulator, workers ------------------------------------------------


def server_environment(
    config: ScaleOutConfig, port: int, database_url: str | None
) -> dict[str, str]:
    """The Prefect server's environment: its database, pool sizing, fast lease repossessor."""
    env = base_environment(config.stack)
    env.update(
        PREFECT_SERVER_LOGGING_LEVEL="WARNING",
        PREFECT_SERVER_API_HOST="127.0.0.1",
        PREFECT_SERVER_API_PORT=str(port),
        PREFECT_UI_API_URL=f"http://127.0.0.1:{port}/api",
        # Window limits: an expired lease frees its slot within a second, not fifteen,
        # and leases kept in files survive a server restart (in memory, their slots
        # would stay taken for good).
        PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS="1",
        PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE="prefect.server.concurrency.lease_storage.filesystem",
    )
    if database_url is not None:
        env.update(
            PREFECT_SERVER_DATABASE_CONNECTION_URL=database_url,
            PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_SIZE=str(config.db_pool_size),
            PREFECT_SERVER_DATABASE_SQLALCHEMY_MAX_OVERFLOW=str(config.db_max_overflow),
        )
    return env


def client_environment(config: ScaleOutConfig, api_url: str) -> dict[str, str]:
    """Environment of a command that talks to the stack's Prefect API (not a worker)."""
    env = base_environment(config.stack)
    env.update(PREFECT_API_URL=api_url, COLUMNS="200")
    return env


def worker_environment(config: ScaleOutConfig, api_url: str, index: int) -> dict[str, str]:
    """A worker's environment: a machine of its own, the shared folder, the global limits."""
    machine = config.machine(index)
    env = base_environment(config.stack)
    env.update(
        PREFECT_API_URL=api_url,
        PREFECT_HOME=str(machine / "prefect-home"),
        PREFECT_PROFILES_PATH=str(machine / "prefect-home" / "profiles.toml"),
        # Pacing state is per machine; the journal, results and videos are shared.
        PREFECT_VENICE_HOME=str(machine / "venice-home"),
        PREFECT_INTEGRATIONS_VENICE_JOURNAL_DIR=str(config.journal_dir),
        PREFECT_LOCAL_STORAGE_PATH=str(config.shared / "results"),
        PREFECT_RESULTS_PERSIST_BY_DEFAULT="true",
        PREFECT_WORKER_QUERY_SECONDS=str(config.worker_query_seconds),
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY=str(config.heartbeat_seconds),
        # The server's CSRF protection is off (Prefect's default): no client of a run asks
        # it for a token first (three requests a run). Drop this if you turn it on.
        PREFECT_CLIENT_CSRF_SUPPORT_ENABLED="false",
    )
    if config.prestart:
        env.update(
            PREFECT_VENICE_PRESTART_SOCKET=str(config.prestart_socket(index)),
            PREFECT_VENICE_PRESTART_PYTHON=sys.executable,
        )
    if config.window_limits:
        env.update(
            PREFECT_INTEGRATIONS_VENICE_QUEUE_RATE_LIMIT=QUEUE_LIMIT,
            PREFECT_INTEGRATIONS_VENICE_RETRIEVE_RATE_LIMIT=RETRIEVE_LIMIT,
        )
    return env


def _prefect(config: ScaleOutConfig, api_url: str, *args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(  # noqa: S603
        [str(BIN_DIR / "prefect"), *args],
        cwd=str(cwd or config.root),
        env=client_environment(config, api_url),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise ScaleOutError(
            f"prefect {' '.join(args)} failed: {(done.stdout + done.stderr)[-1500:]}"
        )
    return done.stdout


def _python(
    config: ScaleOutConfig,
    api_url: str,
    code: str,
    extra: dict[str, str] | None = None,
    timeout: float = 300.0,
) -> str:
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code],
        cwd=str(config.root),
        env={**client_environment(config, api_url), **(extra or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise ScaleOutError(f"python step failed: {(done.stdout + done.stderr)[-1500:]}")
    return done.stdout


_SAVE_BLOCK = """
import os
from prefect_venice.blocks import VeniceCredentials
kwargs = {"api_key": os.environ["VENICE_API_KEY"]}
if os.environ.get("VENICE_BASE_URL"):
    kwargs["base_url"] = os.environ["VENICE_BASE_URL"]
VeniceCredentials(**kwargs).save(os.environ["BLOCK_NAME"], overwrite=True)
"""


def start_emulator(config: ScaleOutConfig) -> tuple[ManagedProcess, str, str]:
    """Start the Venice emulator with real per-minute windows; return it, its API URL, origin."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "prefect_venice.emulator",
        "--port",
        str(port),
        "--api-key",
        EMULATOR_API_KEY,
        "--time-scale",
        str(config.time_scale),
        "--balance",
        "1000",
    ]
    if config.real_time_limits:
        argv.append("--real-time-limits")
    process = start_process("emulator", argv, base_environment(config.stack), config.stack)
    origin = f"http://127.0.0.1:{port}"
    wait_until_answering(process, f"{origin}/_emulator/ledger", config.startup_timeout)
    return process, f"{origin}/api/v1", origin


def start_prestart(config: ScaleOutConfig, api_url: str, index: int) -> ManagedProcess:
    """Start machine `index`'s pre-started interpreter and wait for its socket."""
    for folder in (config.machine(index) / "prefect-home", config.machine(index) / "venice-home"):
        folder.mkdir(parents=True, exist_ok=True)
    path = config.prestart_socket(index)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.parent.stat().st_uid != os.geteuid():
        raise ScaleOutError(f"{path.parent} belongs to another user; not using it")
    path.parent.chmod(0o700)  # only this user reaches the socket
    argv = [sys.executable, str(DEPLOYMENTS_DIR / "prestart.py"), "serve", "--socket", str(path)]
    process = start_process(
        f"prestart-{index}",
        argv,
        worker_environment(config, api_url, index),
        config.stack,
        cwd=DEPLOYMENTS_DIR,
    )
    deadline = time.monotonic() + config.startup_timeout
    while not _answers(path):
        if not is_running(process) or time.monotonic() > deadline:
            raise ScaleOutError(f"prestart-{index} did not start; see {process.log}")
        time.sleep(0.1)
    return process


def _answers(path: Path) -> bool:
    """Tell whether a server listens on the Unix socket `path` (bound is not enough)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def start_worker(config: ScaleOutConfig, api_url: str, index: int) -> ManagedProcess:
    """Start `prefect worker start --pool venice` as machine `index`."""
    for folder in (config.machine(index) / "prefect-home", config.machine(index) / "venice-home"):
        folder.mkdir(parents=True, exist_ok=True)
    name = f"worker-{index}"
    argv = [
        str(BIN_DIR / "prefect"),
        "worker",
        "start",
        "--pool",
        POOL,
        "--name",
        name,
        "--limit",
        str(config.worker_limit),
    ]
    return start_process(
        name, argv, worker_environment(config, api_url, index), config.stack, cwd=DEPLOYMENTS_DIR
    )


def configure(config: ScaleOutConfig, api_url: str, emulator_url: str | None = None) -> None:
    """Steps 3-6 against a running server: pool, limits, automations, block, deployment.

    What `deployments/compose.yaml`'s one-shot `setup` service runs too. The block
    takes VENICE_API_KEY (and VENICE_BASE_URL, if set) from the environment, or the
    emulator's key and URL when `emulator_url` is given.
    """
    # 3. The work pool and its concurrency.
    with contextlib.suppress(ScaleOutError):  # it may exist from an earlier `up`
        _prefect(config, api_url, "work-pool", "create", POOL, "--type", "process")
    # Runs start through deployments/prestart.py: from the worker's pre-started
    # interpreter when one listens (PREFECT_VENICE_PRESTART_SOCKET), else as usual.
    template = json.loads(
        _prefect(config, api_url, "work-pool", "get-default-base-job-template", "--type", "process")
    )
    if config.prestart:
        template["variables"]["properties"]["command"]["default"] = PRESTART_COMMAND
    template_file = config.root / "process-job-template.json"
    template_file.write_text(json.dumps(template, indent=2))
    _prefect(
        config, api_url, "work-pool", "update", POOL, "--base-job-template", str(template_file)
    )
    _prefect(
        config,
        api_url,
        "work-pool",
        "set-concurrency-limit",
        POOL,
        str(config.effective_pool_limit),
    )
    # 4 and 5. The window limits and the recovery automations.
    if config.window_limits:
        _run(
            [str(BIN_DIR / "prefect-venice"), "limits"],
            env=client_environment(config, api_url),
            what="prefect-venice limits",
        )
    _run(
        [str(BIN_DIR / "prefect-venice"), "recovery"],
        env=client_environment(config, api_url),
        what="prefect-venice recovery",
    )
    # 6. The credentials block and the deployment.
    block_env = {"BLOCK_NAME": CREDENTIALS_BLOCK}
    if emulator_url is not None:
        block_env.update(VENICE_API_KEY=EMULATOR_API_KEY, VENICE_BASE_URL=emulator_url)
    elif not os.environ.get("VENICE_API_KEY"):
        raise ScaleOutError("Set VENICE_API_KEY (or pass --emulator) for the credentials block.")
    _python(config, api_url, _SAVE_BLOCK, block_env)
    _prefect(
        config,
        api_url,
        "deploy",
        "--name",
        "on-demand-pool",
        "--no-prompt",
        cwd=DEPLOYMENTS_DIR,
    )


def up(config: ScaleOutConfig) -> ScaleOutStack:
    """Bring the whole recipe up (steps 1-7 of the module docstring); return the stack."""
    for folder in (config.root, config.stack.prefect_home, config.stack.logs, config.videos):
        folder.mkdir(parents=True, exist_ok=True)
    config.shared.mkdir(mode=0o700, exist_ok=True)
    processes: list[ManagedProcess] = []
    stack: ScaleOutStack | None = None
    try:
        database_url: str | None = None
        redacted = "sqlite"
        pg_data: str | None = None
        if config.postgres:
            pg, database_url, redacted, folder = start_postgres(config, free_port())
            processes.append(pg)
            pg_data = str(folder)
        port = choose_port(0)
        server = start_process(
            "prefect-server",
            [
                str(BIN_DIR / "prefect"),
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            server_environment(config, port, database_url),
            config.stack,
        )
        processes.append(server)
        api_url = f"http://127.0.0.1:{port}/api"
        stack = ScaleOutStack(
            api_url=api_url,
            ui_url=f"http://127.0.0.1:{port}",
            database_url_redacted=redacted,
            emulator_url=None,
            emulator_origin=None,
            processes=processes,
            pg_data=pg_data,
        )
        save_state(config, stack)
        wait_until_answering(server, f"{api_url}/health", config.startup_timeout)
        if config.emulator:
            emulator, stack.emulator_url, stack.emulator_origin = start_emulator(config)
            processes.append(emulator)
            save_state(config, stack)
        configure(config, api_url, stack.emulator_url)
        # 7. The workers, each with its pre-started interpreter.
        for index in range(1, config.workers + 1):
            if config.prestart:
                processes.append(start_prestart(config, api_url, index))
                save_state(config, stack)
            worker = start_worker(config, api_url, index)
            processes.append(worker)
            stack.workers.append(worker.name)
        save_state(config, stack)
        time.sleep(1.0)
        for name in stack.workers:
            if not is_running(stack.process(name)):
                raise ScaleOutError(f"{name} exited at once; see {stack.process(name).log}")
        return stack
    except (ScaleOutError, StackError):
        if stack is None:
            for process in reversed(processes):
                stop_process(process)
        else:
            down(config)
        raise


# State -------------------------------------------------------------------------------


def save_state(config: ScaleOutConfig, stack: ScaleOutStack) -> None:
    """Record the running stack (no secrets: the database URL is kept redacted)."""
    config.state_file.write_text(json.dumps(asdict(stack), indent=2) + "\n")


def load_state(config: ScaleOutConfig) -> ScaleOutStack | None:
    """Read the recorded stack, or None."""
    try:
        raw = json.loads(config.state_file.read_text())
        processes = [ManagedProcess(**item) for item in raw.pop("processes")]
        return ScaleOutStack(**raw, processes=processes)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def down(config: ScaleOutConfig, remove_data: bool = False) -> list[str]:
    """Stop every recorded process, workers first; optionally remove the database cluster."""
    stack = load_state(config)
    if stack is None:
        return []
    stopped = [p.name for p in reversed(stack.processes) if stop_process(p)]
    config.state_file.unlink(missing_ok=True)
    if remove_data and stack.pg_data and Path(stack.pg_data).name.startswith("prefect-venice-pg"):
        shutil.rmtree(stack.pg_data, ignore_errors=True)
    return stopped


# Firing runs and reading what Venice saw -------------------------------------------------


def create_runs(
    config: ScaleOutConfig,
    stack: ScaleOutStack,
    runs: int,
    prompt: str = "A lighthouse at dusk, waves below",
) -> tuple[list[str], float]:
    """Create `runs` runs of the on-demand deployment at once; return their ids and the time."""
    extra = {
        "FIRE_RUNS": str(runs),
        "FIRE_PROMPT": prompt,
        "FIRE_OUTPUT": str(config.videos),
        "FIRE_DEPLOYMENT": DEPLOYMENT,
    }
    created = json.loads(_python(config, stack.api_url, _CREATE, extra))
    return [str(run_id) for run_id in created["ids"]], float(created["started"])


def wait_for_runs(
    config: ScaleOutConfig,
    stack: ScaleOutStack,
    ids: Sequence[str],
    started: float,
    timeout: float = 900.0,
) -> dict[str, Any]:
    """Wait until every run is final (or `timeout`); report states, workers, wall time."""
    extra = {"FIRE_IDS": json.dumps(list(ids)), "FIRE_STARTED": str(started)}
    extra["FIRE_TIMEOUT"] = str(timeout)
    answer = _python(config, stack.api_url, _WAIT, extra, timeout=timeout + 60)
    report: dict[str, Any] = json.loads(answer)
    return report


def fire(
    config: ScaleOutConfig,
    stack: ScaleOutStack,
    runs: int,
    timeout: float = 900.0,
    prompt: str = "A lighthouse at dusk, waves below",
) -> dict[str, Any]:
    """Create `runs` runs of the on-demand deployment at once, wait for all, and report.

    The report holds the runs' final states and workers, the wall time from the
    first run created to the last run finished, the CPU seconds each stack process
    used meanwhile, and (with the emulator) the ledger's counts, the request log's
    peaks per 60 s and the bound Venice's limits set.
    """
    before = stack_cpu(stack)
    ids, started = create_runs(config, stack, runs, prompt)
    report = wait_for_runs(config, stack, ids, started, timeout)
    report["run_ids"] = list(ids)
    after = stack_cpu(stack)
    report["cpu_seconds"] = {
        name: round(after.get(name, 0.0) - before.get(name, 0.0), 1) for name in after
    }
    if stack.emulator_origin is not None:
        venice = emulator_report(stack.emulator_origin)
        report["venice"] = venice
        report["bound_seconds"] = rate_limit_bound(runs, venice["longest_job_seconds"])
        report["ratio_to_bound"] = round(report["wall_seconds"] / report["bound_seconds"], 2)
        if venice["first_queue_call"] is not None:
            report["first_queue_call_after_seconds"] = round(
                venice["first_queue_call"] - started, 1
            )
    return report


def kill_machine(stack: ScaleOutStack, worker: str) -> list[int]:
    """SIGKILL a worker, its pre-started interpreter and their children, as a dead machine.

    Nothing is told: the worker cannot report its runs Crashed, and they stay Running
    until the zombie automation (`prefect-venice recovery`) marks them.
    """
    roots = {stack.process(worker).pid}
    prestart = worker.replace("worker-", "prestart-")
    with contextlib.suppress(KeyError):
        roots.add(stack.process(prestart).pid)
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            raw = stat.read_text()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(raw[raw.rindex(")") + 2 :].split()[1])
    doomed = set(roots)
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in doomed and pid not in doomed:
                doomed.add(pid)
                grew = True
    for pid in sorted(doomed):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for root in roots:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(root, os.WNOHANG)
    return sorted(doomed)


_CREATE = r"""
import asyncio, json, os, time
from prefect import get_client

async def main():
    request = {"prompt": os.environ["FIRE_PROMPT"], "output_dir": os.environ["FIRE_OUTPUT"]}
    async with get_client() as client:
        deployment = await client.read_deployment_by_name(os.environ["FIRE_DEPLOYMENT"])
        started = time.time()
        created = await asyncio.gather(*(
            client.create_flow_run_from_deployment(deployment.id, parameters={"request": request})
            for _ in range(int(os.environ["FIRE_RUNS"]))
        ))
    print(json.dumps({"ids": [str(run.id) for run in created], "started": started}))

asyncio.run(main())
"""

_WAIT = r"""
import asyncio, json, os, time
from datetime import datetime, timezone
from uuid import UUID
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

#: A Crashed run may be scheduled again by the recovery automation: count it as ended
#: only once it has stayed Crashed this long.
CRASH_GRACE = 30.0

def ended(run):
    state = run.state
    if state is None or not state.is_final():
        return False
    if state.is_crashed() and state.timestamp is not None:
        age = (datetime.now(timezone.utc) - state.timestamp).total_seconds()
        return age > CRASH_GRACE
    return True

async def main():
    ids = [UUID(i) for i in json.loads(os.environ["FIRE_IDS"])]
    started = float(os.environ["FIRE_STARTED"])
    timeout = float(os.environ["FIRE_TIMEOUT"])
    only = FlowRunFilter(id=FlowRunFilterId(any_=ids))
    async with get_client() as client:
        while True:
            runs = await client.read_flow_runs(flow_run_filter=only, limit=len(ids))
            if (len(runs) == len(ids) and all(ended(run) for run in runs)) or (
                time.time() - started > timeout
            ):
                break
            await asyncio.sleep(1.0)
    states, workers, attempts = {}, {}, {}
    for run in runs:
        name = run.state.name if run.state is not None else "none"
        states[name] = states.get(name, 0) + 1
        worker = (run.labels or {}).get("prefect.worker.name") or "unknown"
        workers[worker] = workers.get(worker, 0) + 1
        attempts[str(run.run_count)] = attempts.get(str(run.run_count), 0) + 1
    # The last run's end as the server recorded it (not when this loop noticed it).
    ends = [run.end_time.timestamp() for run in runs if run.end_time is not None]
    last = max(ends, default=time.time())
    print(json.dumps({
        "runs": len(ids),
        "states": states,
        "workers": workers,
        "run_counts": attempts,
        "wall_seconds": round(last - started, 1),
    }))

asyncio.run(main())
"""


def session_cpu_seconds(session_id: int) -> float:
    """CPU seconds used by the processes of one session, and by their reaped children.

    Every stack process is started in a session of its own (its pid is the session
    id), so this counts a worker together with the flow-run processes it started.
    Linux only (reads /proc); 0 elsewhere.
    """
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            raw = stat.read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        # After the command: state(0) ppid(1) pgrp(2) session(3) ... utime(11) stime(12)
        # cutime(13) cstime(14).
        if int(fields[3]) == session_id:
            total += sum(int(value) for value in fields[11:15])
    return total / ticks


def stack_cpu(stack: ScaleOutStack) -> dict[str, float]:
    """CPU seconds so far of each stack process (with its children), by name."""
    return {process.name: session_cpu_seconds(process.pid) for process in stack.processes}


def runs_with_log(stack: ScaleOutStack, text: str, ids: Sequence[str] | None = None) -> set[str]:
    """Return the flow runs (of `ids`, if given) with a log line on the server containing `text`.

    The server filters (Prefect's log text search, a quoted phrase, and the run ids), so
    the answer is a few lines per run, not every log line of every run. Paging through
    all of them by offset is unreliable while lines still arrive: they are sorted by
    their client-side timestamps, which tie and arrive late (a worker's "exited" line
    for a run comes after the run's own), so rows shift between pages and a line is
    skipped or counted twice.
    """
    logs: dict[str, Any] = {"text": {"query": f'"{text.strip()}"'}}
    if ids is not None:
        logs["flow_run_id"] = {"any_": list(ids)}
    runs: set[str] = set()
    offset = 0
    while True:
        body = json.dumps(
            {"logs": logs, "limit": 200, "offset": offset, "sort": "TIMESTAMP_ASC"}
        ).encode()
        request = urllib.request.Request(  # noqa: S310 (loopback)
            f"{stack.api_url}/logs/filter",
            data=body,
            headers={"content-type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            page = json.loads(answer.read())
        runs.update(
            str(line["flow_run_id"])
            for line in page
            if text in str(line.get("message", "")) and line.get("flow_run_id")
        )
        if len(page) < 200:
            return runs
        offset += 200


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as answer:  # noqa: S310 (loopback)
        return json.loads(answer.read())


def emulator_report(origin: str) -> dict[str, Any]:
    """What the emulator saw: calls, 429s, queue calls per job, and peaks per 60 s."""
    from prefect_venice.emulator import peak_per_window

    ledger = _get_json(f"{origin}/_emulator/ledger")
    log = _get_json(f"{origin}/_emulator/requests")
    requests = log["requests"] if isinstance(log, dict) else log
    jobs = ledger.get("jobs", {})
    too_many = sum(1 for entry in requests if entry.get("status") == 429)
    run_seconds = [float(job.get("run_seconds", 0.0)) for job in jobs.values()]
    queue_times = sorted(float(e["time"]) for e in requests if e["endpoint"] == "queue")
    retrieve_times = sorted(float(e["time"]) for e in requests if e["endpoint"] == "retrieve")
    return {
        "calls": ledger.get("calls", {}),
        "answers_429": too_many,
        "jobs": len(jobs),
        "queue_calls_per_job": sorted({int(job.get("queue_calls", 0)) for job in jobs.values()}),
        "charged_usd": round(sum(float(job.get("charged_usd", 0.0)) for job in jobs.values()), 4),
        # Venice's own rule: fixed windows, each opened by the first call after the last
        # one ended (what the emulator enforces, and what a 429 would answer).
        "queue_per_venice_window": fixed_window_counts(queue_times),
        "retrieve_per_venice_window": fixed_window_counts(retrieve_times),
        # Any 60 s, sliding: stricter than Venice. A slot is taken a moment before Venice
        # counts its call, so on a loaded machine this may exceed the limit by a few.
        "peak_queue_per_60s": peak_per_window(requests, "queue"),
        "peak_retrieve_per_60s": peak_per_window(requests, "retrieve"),
        # Seconds from the first queue call to each one: the windows at a glance.
        "queue_call_offsets": [round(t - queue_times[0], 1) for t in queue_times],
        "first_queue_call": queue_times[0] if queue_times else None,
        "last_queue_call": queue_times[-1] if queue_times else None,
        "longest_job_seconds": round(max(run_seconds, default=0.0), 2),
        "median_job_seconds": round(statistics.median(run_seconds), 2) if run_seconds else 0.0,
    }


def fixed_window_counts(times: Sequence[float], period: float = 60.0) -> list[int]:
    """Calls per fixed window, as Venice counts them: the first call opens a window."""
    counts: list[int] = []
    start: float | None = None
    for moment in sorted(times):
        if start is None or moment >= start + period:
            start = moment
            counts.append(0)
        counts[-1] += 1
    return counts


def rate_limit_bound(runs: int, longest_job_seconds: float, per_window: int = 40) -> float:
    """The least wall time Venice's queue limit allows for `runs` jobs, started together.

    The first `per_window` calls fit the first minute; each further group must wait
    for another window, 60 s after the one before; the last job then runs.
    """
    windows = max(0, (runs - 1) // per_window)
    return round(60.0 * windows + longest_job_seconds, 1)


# Command line ------------------------------------------------------------------------


def _config(args: argparse.Namespace) -> ScaleOutConfig:
    return ScaleOutConfig(
        root=Path(args.root).resolve(),
        workers=getattr(args, "workers", 3),
        worker_limit=getattr(args, "worker_limit", 10),
        pool_limit=getattr(args, "pool_limit", None),
        postgres=not getattr(args, "sqlite", False),
        emulator=getattr(args, "emulator", False),
        time_scale=getattr(args, "time_scale", 0.01),
        window_limits=not getattr(args, "no_limits", False),
        prestart=not getattr(args, "no_prestart", False),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line: up, fire, status or down."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up_parser = sub.add_parser("up", help="start PostgreSQL, the server, the workers")
    up_parser.add_argument("--root", default=".scale-out")
    up_parser.add_argument("--workers", type=int, default=3)
    up_parser.add_argument("--worker-limit", type=int, default=10, help="runs per worker")
    up_parser.add_argument("--pool-limit", type=int, default=None, help="work pool limit")
    up_parser.add_argument("--sqlite", action="store_true", help="no PostgreSQL (one machine)")
    up_parser.add_argument("--emulator", action="store_true", help="use the Venice emulator")
    up_parser.add_argument("--time-scale", type=float, default=0.01)
    up_parser.add_argument("--no-limits", action="store_true", help="no global limits")
    up_parser.add_argument(
        "--no-prestart", action="store_true", help="plain `python -m prefect.engine` per run"
    )
    setup_parser = sub.add_parser(
        "setup", help="steps 3-6 only, against the server PREFECT_API_URL names (compose)"
    )
    setup_parser.add_argument("--root", default=".scale-out")
    setup_parser.add_argument("--api-url", default=os.environ.get("PREFECT_API_URL"))
    setup_parser.add_argument("--workers", type=int, default=3)
    setup_parser.add_argument("--worker-limit", type=int, default=10, help="runs per worker")
    setup_parser.add_argument("--pool-limit", type=int, default=None, help="work pool limit")
    setup_parser.add_argument("--no-limits", action="store_true", help="no global limits")
    fire_parser = sub.add_parser("fire", help="start RUNS on-demand runs at once and report")
    fire_parser.add_argument("--root", default=".scale-out")
    fire_parser.add_argument("--runs", type=int, default=60)
    fire_parser.add_argument("--timeout", type=float, default=900.0)
    for name in ("status", "down"):
        command = sub.add_parser(name)
        command.add_argument("--root", default=".scale-out")
        if name == "down":
            command.add_argument("--remove-data", action="store_true")
    args = parser.parse_args(argv)
    config = _config(args)
    if args.command == "up":
        stack = up(config)
        print(f"Prefect UI: {stack.ui_url}")
        print(f"export PREFECT_API_URL={stack.api_url}")
        print(f"database: {stack.database_url_redacted}; workers: {', '.join(stack.workers)}")
        return 0
    if args.command == "setup":
        if not args.api_url:
            print("setup needs --api-url or PREFECT_API_URL", file=sys.stderr)
            return 2
        config.root.mkdir(parents=True, exist_ok=True)
        configure(config, args.api_url)
        print(f"configured {args.api_url}: pool {POOL}, limits, recovery, block, deployment")
        return 0
    stack_or_none = load_state(config)
    if args.command == "down":
        stopped = down(config, remove_data=args.remove_data)
        print("stopped: " + (", ".join(stopped) or "nothing"))
        return 0
    if stack_or_none is None:
        print(f"no stack recorded under {config.root}", file=sys.stderr)
        return 1
    if args.command == "status":
        for process in stack_or_none.processes:
            print(f"{process.name}: {'running' if is_running(process) else 'stopped'}")
        return 0
    print(json.dumps(fire(config, stack_or_none, args.runs, args.timeout), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
