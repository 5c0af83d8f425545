"""Start flow runs from a pre-started interpreter: each run skips Prefect's import.

A process worker starts every flow run as a new `python -m prefect.engine`, which
imports Prefect, this package and their dependencies again: about 1.2 s of CPU
per run, a third of what a short deployment run costs, and on a two-core machine
running sixty runs at once the first queue call waited minutes behind the imports.

    python deployments/prestart.py serve --socket /run/venice/prestart.sock
        A process that has imported everything once and forks a child per run.
        Start it beside the worker, with the worker's environment.
    python3 -I -S prestart.py run      (the work pool's command, in deployments/)
        What the worker starts for a run: a stdlib-only stub that hands its
        environment, working directory and standard streams to the server over
        the socket, forwards signals to the forked run, and exits with its code.
        Without a server (PREFECT_VENICE_PRESTART_SOCKET unset, or nothing
        listening) it becomes `python -m prefect.engine` itself.

Work every run repeated is done once, before forking (it cut the children's CPU by
about 40 % in the sixty-run test): Prefect's API clients share one SSL context per CA
file instead of loading certifi's bundle for each of a run's ten or so clients
(`SharedSSLContexts`), the server version is checked once, the Venice clients' SSL
context is built, and the modules each run imported lazily are imported. A run whose
environment gives the server's settings keeps the settings and logging the server
built; any other run builds its own.

The fork happens before the child runs anything of the flow: the server has only
imported modules (one thread, no connection, no event loop), and the child replaces
its environment with the run's, then builds Prefect's settings from it, as
Prefect's own `run_flow_in_subprocess` does after its imports. When the stub dies
(the worker cancels the run or is killed), the server ends the child: the run
never outlives what the worker started.
"""

from __future__ import annotations

import argparse
import array
import contextlib
import json
import os
import selectors
import signal
import socket
import struct
import sys
import time
import types
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NoReturn

SOCKET_ENV = "PREFECT_VENICE_PRESTART_SOCKET"
PYTHON_ENV = "PREFECT_VENICE_PRESTART_PYTHON"
#: Imported once by the server, so that no run imports them again.
PRELOAD = (
    "prefect.engine",
    "prefect.flow_engine",
    "prefect.task_engine",
    "prefect_venice.flows",
    "prefect_venice.tasks",
    "prefect_venice.blocks",
)
#: Imported too where present: what every run imported lazily before (py-spy of sixty
#: runs: anyio's asyncio backend, the deployment steps, Prefect's visualisation).
PRELOAD_IF_PRESENT = (
    "anyio._backends._asyncio",
    "prefect.deployments.steps",
    "prefect.deployments.steps.core",
    "prefect.utilities.visualization",
    "encodings.idna",
    "rich._emoji_codes",
)
_HEADER = struct.Struct("!I")


# Messages: a 4-byte length, then JSON. -------------------------------------------


def _send(sock: socket.socket, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
    body = json.dumps(message).encode()
    data = _HEADER.pack(len(body)) + body
    if fds:
        sent = sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
        sock.sendall(data[sent:])  # the descriptors went with the first bytes
    else:
        sock.sendall(data)


def _recv(sock: socket.socket, want_fds: int = 0) -> tuple[dict[str, Any] | None, list[int]]:
    """Read one message (and up to `want_fds` descriptors); None when the peer closed.

    Descriptors received before a failure are closed, never leaked.
    """
    fds: list[int] = []
    try:
        return _recv_into(sock, want_fds, fds)
    except BaseException:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        raise


def _recv_into(
    sock: socket.socket, want_fds: int, fds: list[int]
) -> tuple[dict[str, Any] | None, list[int]]:
    chunks = b""
    while len(chunks) < _HEADER.size:
        if want_fds and not fds:
            space = socket.CMSG_SPACE(want_fds * array.array("i").itemsize)
            data, ancillary, _, _ = sock.recvmsg(_HEADER.size - len(chunks), space)
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    received = array.array("i")
                    usable = len(payload) - len(payload) % received.itemsize
                    received.frombytes(payload[:usable])
                    fds.extend(received)
        else:
            data = sock.recv(_HEADER.size - len(chunks))
        if not data:
            return None, fds
        chunks += data
    (size,) = _HEADER.unpack(chunks)
    body = b""
    while len(body) < size:
        data = sock.recv(size - len(body))
        if not data:
            return None, fds
        body += data
    return json.loads(body), fds


# Work every run repeated, done once before forking -----------------------------------


def _stamp(path: object) -> tuple[int, int, int] | None:
    """A file's identity and version (inode, size, mtime), or None if it is not there."""
    if path is None:
        return None
    try:
        info = os.stat(str(path))
    except OSError:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns)


def logging_overrides(env: Mapping[str, str]) -> dict[str, str]:
    """The PREFECT_LOGGING_* variables: Prefect's logging reads them raw, beside its settings."""
    return {key: value for key, value in env.items() if key.startswith("PREFECT_LOGGING_")}


class SharedSSLContexts(types.ModuleType):
    """The `ssl` module as Prefect's API clients see it here: one context per CA file.

    Prefect builds a new SSL context for every API client it opens (loading certifi's
    150 CA certificates, 15 ms of CPU), and a run opens about ten (its own, the log and
    event workers', the version check's, ...). In the server and its children this
    stand-in, put in place of `ssl` in the modules that build those clients, builds
    one per CA file, TLS mode and certificate environment, and hands the same one to
    every client. They all configure it alike (the same CA file, the same HTTP/2
    setting, CERT_NONE when Prefect is told not to verify), so sharing it changes no
    connection. Everything else is the real `ssl` module.
    """

    def __init__(self) -> None:
        import ssl
        import threading

        super().__init__("ssl")
        self._ssl = ssl
        self._made: dict[tuple[object, ...], Any] = {}
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ssl, name)

    def create_default_context(
        self,
        purpose: Any = None,
        *,
        cafile: str | None = None,
        capath: str | None = None,
        cadata: str | bytes | None = None,
    ) -> Any:
        """`ssl.create_default_context`, built once per arguments, files and environment."""
        purpose = self._ssl.Purpose.SERVER_AUTH if purpose is None else purpose
        key = (
            purpose,
            cafile,
            capath,
            cadata,
            _stamp(cafile),
            _stamp(capath),
            os.environ.get("SSL_CERT_FILE"),
            os.environ.get("SSL_CERT_DIR"),
        )
        with self._lock:
            context = self._made.get(key)
            if context is None:
                context = self._ssl.create_default_context(
                    purpose, cafile=cafile, capath=capath, cadata=cadata
                )
                self._made[key] = context
            return context


#: The modules whose `ssl` builds the contexts of Prefect's API clients.
_PREFECT_SSL_USERS = ("prefect.client.orchestration", "prefect._internal.version_checking")


def share_prefect_ssl_contexts() -> SharedSSLContexts:
    """Put one `SharedSSLContexts` in place of `ssl` in Prefect's client modules.

    The context Prefect's settings call for is built here, before any fork, so no run
    builds it. A module that no longer imports `ssl` by that name is left alone.
    """
    import certifi
    from prefect.settings import get_current_settings

    shared = SharedSSLContexts()
    for name in _PREFECT_SSL_USERS:
        module = sys.modules.get(name)
        if module is not None and getattr(module, "ssl", None) is shared._ssl:
            module.ssl = shared  # type: ignore[attr-defined]
    # The context Prefect's clients will ask for, as they work out its CA file.
    api = get_current_settings().api
    if api.tls_insecure_skip_verify:
        shared.create_default_context()
    else:
        shared.create_default_context(cafile=api.ssl_cert_file or certifi.where())
    return shared


def check_server_version_once() -> None:
    """Run Prefect's server version check here, so that no run repeats it.

    Prefect checks the server's version once per process and API URL; each run, a
    process of its own, asked twice. The check's result is kept in the module the
    children inherit. Nothing is kept if the server cannot be reached (each run then
    checks for itself). Leaves no thread, loop or connection behind.
    """
    import asyncio
    import logging

    import prefect
    from prefect._internal.version_checking import check_server_version
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        return
    logger = logging.getLogger("prefect_venice.prestart")

    async def check() -> None:
        await asyncio.wait_for(check_server_version(str(url), logger), timeout=30)

    try:
        asyncio.run(check())
    except Exception as exc:  # every run checks for itself instead
        # The type only: an HTTP error's text carries the API URL, which may hold a password.
        print(
            f"prestart: server version not checked ({type(exc).__name__}); each run checks",
            flush=True,
        )
        return
    # The API clients look the check up under the URL with a trailing slash (httpx's
    # base URL), the websocket clients under the setting's spelling: keep both.
    from prefect._internal.version_checking import (
        _api_version_check_key,
        _cache_api_version_check,
        _is_api_version_check_cached,
    )

    checked = _api_version_check_key(str(url), prefect.__version__)
    if _is_api_version_check_cached(checked):
        slashed = str(url).rstrip("/") + "/"
        _cache_api_version_check(_api_version_check_key(slashed, prefect.__version__))


def _warm_up() -> None:
    """Do before forking what every run would repeat; a step that fails is left to the runs.

    Each step leans on Prefect's internals: after a Prefect upgrade one may fail, and the
    server must still start (its runs then do that work themselves, as before).
    """

    def venice_context() -> None:
        from prefect_venice import VeniceClient

        VeniceClient("warm-up").close()  # builds the context every Venice client shares

    for step in (share_prefect_ssl_contexts, check_server_version_once, venice_context):
        try:
            step()
        except Exception as exc:
            print(f"prestart: {step.__name__} skipped ({type(exc).__name__})", flush=True)


# The stub the worker starts -------------------------------------------------------


def _become_engine(argv: Sequence[str]) -> NoReturn:
    python = os.environ.get(PYTHON_ENV) or sys.executable
    os.execv(python, [python, "-m", "prefect.engine", *argv])  # noqa: S606 (our own argv)


def _peer_uid(sock: socket.socket) -> int | None:
    """The user id of the process at the other end of a Unix socket (Linux), else None."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    credentials = sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", credentials)
    return int(uid)


def run_stub(argv: Sequence[str]) -> int:
    """Hand this run to the server and wait for it; without a server, become the engine."""
    child: int | None = None
    pending: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        if child is None:
            pending.append(signum)  # before the run exists: sent as soon as it does
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    path = os.environ.get(SOCKET_ENV)
    if not path:
        _become_engine(argv)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        _become_engine(argv)
    peer = _peer_uid(sock)
    if peer is not None and peer != os.geteuid():
        # Someone else's socket: never hand it this run's environment (API keys).
        print(f"prestart: {path} belongs to another user; not using it", file=sys.stderr)
        sock.close()
        _become_engine(argv)
    _send(sock, {"env": dict(os.environ), "cwd": os.getcwd(), "argv": list(argv)}, fds=(0, 1, 2))
    while True:
        try:
            started, _ = _recv(sock)
            break
        except InterruptedError:
            continue
    if started is None or "pid" not in started:
        print("prestart: the server did not start the run", file=sys.stderr)
        return 1
    child = int(started["pid"])
    for early in pending:
        forward(early, None)
    while True:
        try:
            ended, _ = _recv(sock)
        except InterruptedError:
            continue
        if ended is None:
            # The server died: its run would go on unseen (no one reports its end) while
            # the worker marks it Crashed and it may be retried. End it first.
            print("prestart: lost the server; ending the run", file=sys.stderr)
            _end(child)
            return 1
        if "exit" in ended:
            return int(ended["exit"])


def _end(pid: int, grace: float = 10.0) -> None:
    """SIGTERM `pid` (not our child), then SIGKILL it if it still runs after `grace` s."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


# The server ------------------------------------------------------------------------

#: Seconds a run gets after SIGTERM, once its stub died, before SIGKILL (as the worker
#: would have done to a process of its own).
KILL_GRACE_SECONDS = 10.0
#: A stub sends its request at once; one that stalls longer is dropped.
REQUEST_TIMEOUT_SECONDS = 2.0
_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1


def _run_child(
    listener: socket.socket,
    others: list[socket.socket],
    request: dict[str, Any],
    fds: list[int],
    module: str,
) -> NoReturn:
    """In the forked child: become the run's process, then run the engine as `-m` would.

    Entered with TERM, INT and HUP blocked (see `_fork_run`): the server's handlers are
    replaced by Python's defaults before any of them can arrive.
    """
    code = 1
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORWARDED)
        listener.close()
        for conn in others:
            conn.close()
        for target, fd in zip((0, 1, 2), fds, strict=False):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        time.tzset()
        sys.argv = [module, *request["argv"]]
        import re
        import runpy
        import warnings

        # The module was imported before the fork (PRELOAD): running it as __main__ again
        # is what this server is for, not the mistake runpy warns about on every run.
        warnings.filterwarnings(
            "ignore",
            message=re.escape(f"'{module}' found in sys.modules after import of package"),
            category=RuntimeWarning,
        )
        with _run_settings(request):
            try:
                runpy.run_module(module, run_name="__main__", alter_sys=True)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    # Leave as `python -m` would: up through serve() and main() (neither catches it), so
    # the interpreter's exit joins threads and runs the atexit hooks that drain Prefect's
    # log and event workers. os._exit here lost a run's last log lines. Nothing on the
    # way may touch a descriptor by number: the run has reused the numbers the server
    # closed here (_accept's clean-up checks that it runs in the server).
    raise SystemExit(code)


#: The settings the server built at import, and its raw logging variables.
_server_settings: tuple[Any, dict[str, str]] | None = None


@contextlib.contextmanager
def _run_settings(request: dict[str, Any]) -> Iterator[None]:
    """In the child: Prefect's settings and logging as the run's environment makes them.

    Entered with the run's environment and folder in place. Its settings are read from
    them (20 ms); if they equal the server's (the usual case: the worker and the server
    share one environment, which the worker writes out in another spelling), what the
    server built at import serves as is, logging included. Otherwise the global
    settings are built again (threads started without a context, as the log and event
    workers are, read the global ones) and logging is configured again from them.
    """
    from prefect.settings import Settings

    run = (Settings(), logging_overrides(request["env"]))
    if _server_settings is not None and run == _server_settings:
        yield
        return
    from prefect.context import (
        SettingsContext,
        get_settings_context,
        refresh_global_settings_context,
    )
    from prefect.logging.configuration import setup_logging

    refresh_global_settings_context()
    root = get_settings_context()
    with SettingsContext(profile=root.profile, settings=root.settings):
        setup_logging(incremental=False)
        yield


def _fork_run(
    listener: socket.socket,
    inherited: list[socket.socket],
    request: dict[str, Any],
    fds: list[int],
    module: str,
) -> int:
    """Fork the run's child with the forwarded signals blocked around the fork.

    A SIGTERM that the stub forwards the moment it learns the pid then reaches the child
    under Python's default handling, never the server's own handler.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, _FORWARDED)
    try:
        pid = os.fork()
        if pid == 0:
            _run_child(listener, inherited, request, fds, module)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORWARDED)
    return pid


def _bind(path: str) -> socket.socket:
    """Listen on `path` (0600), refusing to take over a path another server answers on."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # a stale socket of a server that is gone
    else:
        raise SystemExit(f"prestart: another server already answers on {path}")
    finally:
        probe.close()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o077)
    try:
        listener.bind(path)
    finally:
        os.umask(old_umask)
    listener.listen(128)
    return listener


def serve(
    path: str, module: str = "prefect.engine", kill_grace: float = KILL_GRACE_SECONDS
) -> None:
    """Import everything once, then fork one child per run handed over on `path`.

    Each child runs `module` as `python -m module` would (the engine; tests run a
    stand-in). SIGTERM or SIGINT stops taking runs (the socket goes, so stubs fall back
    to the plain engine) and waits for the running ones; a second one ends them.
    """
    import importlib

    global _server_settings

    for name in PRELOAD:
        importlib.import_module(name)
    for name in PRELOAD_IF_PRESENT:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    if module == "prefect.engine":
        _warm_up()
    from prefect.settings import get_current_settings

    _server_settings = (get_current_settings(), logging_overrides(os.environ))
    listener = _bind(path)
    inode = os.stat(path).st_ino
    # SIGCHLD wakes the loop through this pair; children are reaped there, not in a handler.
    wake_read, wake_write = socket.socketpair()
    wake_read.setblocking(False)
    wake_write.setblocking(False)
    signal.set_wakeup_fd(wake_write.fileno())
    signal.signal(signal.SIGCHLD, lambda *_: None)
    stops = 0

    def request_stop(*_: object) -> None:
        nonlocal stops
        stops += 1

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    selector.register(wake_read, selectors.EVENT_READ, "wake")
    runs: dict[int, socket.socket] = {}  # child pid -> the stub's connection
    kill_at: dict[int, float] = {}  # child pid -> when to SIGKILL it (its stub died)
    accepting = True
    print(f"prestart: serving on {path} (pid {os.getpid()})", flush=True)
    while True:
        if stops and accepting:
            accepting = False
            selector.unregister(listener)
            listener.close()
            with contextlib.suppress(OSError):
                if os.stat(path).st_ino == inode:  # never another server's socket
                    os.unlink(path)
        if stops > 1:
            for pid in runs:
                kill_at.setdefault(pid, time.monotonic() + kill_grace)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        if not accepting and not runs:
            break
        for key, _ in selector.select(timeout=1.0):
            if key.data == "accept":
                _accept(listener, selector, runs, wake_read, wake_write, module)
            elif key.data == "wake":
                with contextlib.suppress(BlockingIOError):
                    while wake_read.recv(512):
                        pass
            else:
                # The stub closed its end: it died (the worker killed it), so end its run,
                # as the worker would have: SIGTERM now, SIGKILL after the grace.
                pid = int(key.data)
                stub = runs.get(pid)
                try:
                    alive = stub is not None and stub.recv(1, socket.MSG_PEEK) != b""
                except BlockingIOError:
                    alive = True
                except OSError:
                    alive = False
                if not alive:
                    selector.unregister(key.fileobj)
                    kill_at.setdefault(pid, time.monotonic() + kill_grace)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGTERM)
        now = time.monotonic()
        for pid, deadline in list(kill_at.items()):
            if now >= deadline and pid in runs:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        _reap(runs, kill_at, selector)


def _accept(
    listener: socket.socket,
    selector: selectors.BaseSelector,
    runs: dict[int, socket.socket],
    wake_read: socket.socket,
    wake_write: socket.socket,
    module: str,
) -> None:
    """Take one stub's request and fork its run; a bad or gone stub never stops the server."""
    try:
        conn, _ = listener.accept()
    except OSError:
        return
    fds: list[int] = []
    pid = 0
    server = os.getpid()
    try:
        if _peer_uid(conn) not in (None, os.geteuid()):
            raise ValueError("a stub of another user")
        conn.settimeout(REQUEST_TIMEOUT_SECONDS)
        request, fds = _recv(conn, want_fds=3)
        if request is None or len(fds) != 3:
            raise ValueError("an incomplete request")
        if not isinstance(request.get("env"), dict) or not isinstance(request.get("cwd"), str):
            raise ValueError("a malformed request")
        inherited = [*runs.values(), conn, wake_read, wake_write]
        pid = _fork_run(listener, inherited, request, fds, module)
        _send(conn, {"pid": pid})
        conn.setblocking(False)
        runs[pid] = conn
        selector.register(conn, selectors.EVENT_READ, pid)
    except Exception as exc:
        print(f"prestart: dropped a request: {exc!r}", file=sys.stderr, flush=True)
        if pid:
            # Forked, but its stub is gone: nobody would report the run's end.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        conn.close()
    finally:
        # A forked child leaves through these frames too (see _run_child), after it has
        # closed these numbers and maybe reused them for its own sockets: only the server
        # closes its copies.
        if os.getpid() == server:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)


def _reap(
    runs: dict[int, socket.socket], kill_at: dict[int, float], selector: selectors.BaseSelector
) -> None:
    """Reap every ended child and tell its stub how it ended."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        kill_at.pop(pid, None)
        ended = runs.pop(pid, None)
        if ended is None:
            continue
        with contextlib.suppress(KeyError, ValueError):
            selector.unregister(ended)
        with contextlib.suppress(OSError):
            ended.settimeout(5)
            _send(ended, {"exit": _exit_code(status)})
        ended.close()


def main(argv: Sequence[str] | None = None) -> int:
    """`serve --socket PATH` or `run [ENGINE ARGS]`."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["run"]:
        return run_stub(args[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve_parser = sub.add_parser("serve", help="import once, fork a child per run")
    serve_parser.add_argument("--socket", default=os.environ.get(SOCKET_ENV))
    serve_parser.add_argument(
        "--module", default="prefect.engine", help="what each child runs (default: the engine)"
    )
    serve_parser.add_argument(
        "--kill-grace",
        type=float,
        default=KILL_GRACE_SECONDS,
        help="seconds between SIGTERM and SIGKILL for a run whose stub died (default 10)",
    )
    parsed = parser.parse_args(args)
    if not parsed.socket:
        parser.error(f"--socket or {SOCKET_ENV} is required")
    serve(parsed.socket, parsed.module, parsed.kill_grace)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
