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
from collections.abc import Sequence
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
_HEADER = struct.Struct("!I")


# Messages: a 4-byte length, then JSON. -------------------------------------------


def _send(sock: socket.socket, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
    body = json.dumps(message).encode()
    data = _HEADER.pack(len(body)) + body
    if fds:
        sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        sock.sendall(data)


def _recv(sock: socket.socket, want_fds: int = 0) -> tuple[dict[str, Any] | None, list[int]]:
    """Read one message (and up to `want_fds` descriptors); None when the peer closed."""
    fds: list[int] = []
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


# The stub the worker starts -------------------------------------------------------


def _become_engine(argv: Sequence[str]) -> None:
    python = os.environ.get(PYTHON_ENV) or sys.executable
    os.execv(python, [python, "-m", "prefect.engine", *argv])  # noqa: S606 (our own argv)


def run_stub(argv: Sequence[str]) -> int:
    """Hand this run to the server and wait for it; without a server, become the engine."""
    path = os.environ.get(SOCKET_ENV)
    if not path:
        _become_engine(argv)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)  # type: ignore[arg-type]
    except OSError:
        sock.close()
        _become_engine(argv)
    _send(sock, {"env": dict(os.environ), "cwd": os.getcwd(), "argv": list(argv)}, fds=(0, 1, 2))
    started, _ = _recv(sock)
    if started is None or "pid" not in started:
        print("prestart: the server did not start the run", file=sys.stderr)
        return 1
    child = int(started["pid"])

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
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
    import time

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
    """In the forked child: become the run's process, then run the engine as `-m` would."""
    code = 1
    try:
        listener.close()
        for conn in others:
            conn.close()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        for target, fd in zip((0, 1, 2), fds, strict=False):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        sys.argv = [module, *request["argv"]]
        import runpy

        from prefect.context import SettingsContext, get_settings_context
        from prefect.settings import Settings

        with SettingsContext(profile=get_settings_context().profile, settings=Settings()):
            # Logging was configured at import, from the server's settings: again, from the run's.
            from prefect.logging.configuration import setup_logging

            setup_logging(incremental=False)
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
    # log and event workers. os._exit here lost a run's last log lines.
    raise SystemExit(code)


def serve(path: str, module: str = "prefect.engine") -> None:
    """Import everything once, then fork one child per run handed over on `path`.

    Each child runs `module` as `python -m module` would (the engine; tests run a
    stand-in).
    """
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    if os.path.exists(path):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o077)
    try:
        listener.bind(path)
    finally:
        os.umask(old_umask)
    listener.listen(128)
    # SIGCHLD wakes the loop through this pair; children are reaped there, not in a handler.
    wake_read, wake_write = socket.socketpair()
    wake_read.setblocking(False)
    wake_write.setblocking(False)
    signal.set_wakeup_fd(wake_write.fileno())
    signal.signal(signal.SIGCHLD, lambda *_: None)
    stop = False

    def request_stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    selector.register(wake_read, selectors.EVENT_READ, "wake")
    runs: dict[int, socket.socket] = {}  # child pid -> the stub's connection
    print(f"prestart: serving on {path} (pid {os.getpid()})", flush=True)
    while not stop:
        for key, _ in selector.select(timeout=1.0):
            if key.data == "accept":
                conn, _ = listener.accept()
                conn.settimeout(10)
                try:
                    request, fds = _recv(conn, want_fds=3)
                except OSError:
                    conn.close()
                    continue
                if request is None or len(fds) != 3:
                    for fd in fds:
                        os.close(fd)
                    conn.close()
                    continue
                pid = os.fork()
                if pid == 0:
                    inherited = [*runs.values(), conn, wake_read, wake_write]
                    _run_child(listener, inherited, request, fds, module)
                for fd in fds:
                    os.close(fd)
                _send(conn, {"pid": pid})
                conn.setblocking(False)
                runs[pid] = conn
                selector.register(conn, selectors.EVENT_READ, pid)
            elif key.data == "wake":
                try:
                    while wake_read.recv(512):
                        pass
                except BlockingIOError:
                    pass
            else:
                # The stub closed its end (or sent something): it died, so end its run.
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
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGTERM)
        # Reap every ended child and tell its stub how it ended.
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            ended = runs.pop(pid, None)
            if ended is None:
                continue
            with contextlib.suppress(KeyError, ValueError):
                selector.unregister(ended)
            with contextlib.suppress(OSError):
                ended.settimeout(5)
                _send(ended, {"exit": _exit_code(status)})
            ended.close()
    for pid in list(runs):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    listener.close()
    os.unlink(path)


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
    parsed = parser.parse_args(args)
    if not parsed.socket:
        parser.error(f"--socket or {SOCKET_ENV} is required")
    serve(parsed.socket, parsed.module)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
