"""deployments/prestart.py: runs forked from a pre-started interpreter behave like processes.

The server runs a stand-in for `prefect.engine` here (a module that reports what it
was given); the real engine goes through it in test_scale_out.py's sixty runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

PRESTART = Path(__file__).resolve().parents[2] / "deployments" / "prestart.py"

FAKE_ENGINE = textwrap.dedent(
    """
    import json, os, signal, sys, time
    if os.environ.get("FAKE_SLEEP"):
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(42))
    if os.environ.get("FAKE_STUBBORN"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    report = {
        "argv": sys.argv[1:],
        "cwd": os.getcwd(),
        "run_id": os.environ.get("PREFECT__FLOW_RUN_ID"),
        "pid": os.getpid(),
        "ppid": os.getppid(),
    }
    if os.environ.get("FAKE_SETTINGS_REPORT"):
        from prefect.context import SettingsContext
        from prefect.settings import get_current_settings
        report["logging_level"] = get_current_settings().logging.level
        report["persist_results"] = get_current_settings().results.persist_by_default
        # Built again for the run: the child entered a settings context of its own.
        report["settings_rebuilt"] = SettingsContext.get() is not None and (
            SettingsContext.__var__.get(None) is not None
        )
    print(json.dumps(report), flush=True)
    print("to stderr", file=sys.stderr, flush=True)
    if os.environ.get("FAKE_ATEXIT_REPORT"):
        # Descriptors opened by the run (as its log and event workers open sockets) must
        # stay its own until its atexit hooks ran (where those workers send their last
        # batches): they take the lowest free numbers, those the server passed or closed.
        import atexit
        held = [os.open(os.devnull, os.O_RDONLY) for _ in range(16)]
        report_path = os.environ["FAKE_ATEXIT_REPORT"]

        def check():
            closed = []
            for fd in held:
                try:
                    os.fstat(fd)
                except OSError:
                    closed.append(fd)
            with open(report_path, "w") as out:
                json.dump({"held": held, "closed_before_atexit": closed}, out)

        atexit.register(check)
    if os.environ.get("FAKE_SLEEP"):
        time.sleep(float(os.environ["FAKE_SLEEP"]))
    sys.exit(int(os.environ.get("FAKE_EXIT", "0")))
    """
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    """A prestart server whose children run the stand-in engine."""
    (tmp_path / "fake_engine.py").write_text(FAKE_ENGINE)
    socket_path = tmp_path / "prestart.sock"
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path),
        "PREFECT_LOGGING_LEVEL": "INFO",
        "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
    }
    argv = [sys.executable, str(PRESTART), "serve", "--socket", str(socket_path)]
    process = subprocess.Popen(
        [*argv, "--module", "fake_engine", "--kill-grace", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not socket_path.exists():
        assert process.poll() is None, "the server exited"
        assert time.monotonic() < deadline, "the server did not listen"
        time.sleep(0.1)
    try:
        yield socket_path, process
    finally:
        process.terminate()
        process.wait(10)


def _stub(socket_path: Path | None, cwd: Path, **env: str) -> subprocess.Popen[str]:
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    environment.update(env)
    if socket_path is not None:
        environment["PREFECT_VENICE_PRESTART_SOCKET"] = str(socket_path)
    return subprocess.Popen(
        [sys.executable, "-I", "-S", str(PRESTART), "run", "extra-arg"],
        cwd=cwd,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_run_gets_the_stubs_environment_folder_arguments_streams_and_exit_code(
    server: tuple[Path, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    socket_path, process = server
    folder = tmp_path / "run-folder"
    folder.mkdir()

    stub = _stub(socket_path, folder, PREFECT__FLOW_RUN_ID="run-1", FAKE_EXIT="3")
    out, err = stub.communicate(timeout=60)

    assert stub.returncode == 3
    report = json.loads(out.splitlines()[-1])
    assert report["argv"] == ["extra-arg"]
    assert report["cwd"] == str(folder)
    assert report["run_id"] == "run-1"
    # Forked from the server, not started by the stub.
    assert report["ppid"] == process.pid
    assert "to stderr" in err


def test_nothing_of_the_server_closes_the_runs_descriptors_before_its_exit_hooks(
    server: tuple[Path, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    # A child used to leave through the server's frames, whose clean-up closed the
    # descriptors the stub had passed, by number, after the run had reused those numbers
    # for its own sockets: Prefect's log worker lost its last batch ("Bad file
    # descriptor"), and a run's last log line now and then never reached the server.
    socket_path, _ = server
    report_path = tmp_path / "atexit.json"

    stub = _stub(socket_path, tmp_path, FAKE_ATEXIT_REPORT=str(report_path))
    stub.communicate(timeout=60)

    assert stub.returncode == 0
    report = json.loads(report_path.read_text())
    assert report["closed_before_atexit"] == [], report


def test_sigterm_to_the_stub_reaches_the_run(
    server: tuple[Path, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    socket_path, _ = server
    stub = _stub(socket_path, tmp_path, FAKE_SLEEP="30")
    assert stub.stdout is not None
    json.loads(stub.stdout.readline())  # the run started

    stub.send_signal(signal.SIGTERM)

    assert stub.wait(timeout=30) == 42  # the run's own SIGTERM handler ran


def test_a_killed_stub_takes_its_run_with_it(
    server: tuple[Path, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    socket_path, _ = server
    stub = _stub(socket_path, tmp_path, FAKE_SLEEP="30")
    assert stub.stdout is not None
    run_pid = json.loads(stub.stdout.readline())["pid"]

    stub.kill()
    stub.wait(timeout=10)

    deadline = time.monotonic() + 20
    while _alive(run_pid):
        assert time.monotonic() < deadline, "the run outlived the worker's process"
        time.sleep(0.2)


def test_a_dead_server_takes_its_runs_with_it(
    server: tuple[Path, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    socket_path, process = server
    stub = _stub(socket_path, tmp_path, FAKE_SLEEP="30")
    assert stub.stdout is not None
    run_pid = json.loads(stub.stdout.readline())["pid"]

    process.kill()
    process.wait(10)

    assert stub.wait(timeout=30) == 1
    deadline = time.monotonic() + 20
    while _alive(run_pid):
        assert time.monotonic() < deadline, "the run outlived its server and its stub"
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_without_a_server_the_stub_becomes_the_engine_command(tmp_path: Path) -> None:
    fake_python = tmp_path / "python"
    fake_python.write_text('#!/bin/sh\necho "exec: $*"\n')
    fake_python.chmod(0o755)

    stub = _stub(
        tmp_path / "nothing-listens.sock", tmp_path, PREFECT_VENICE_PRESTART_PYTHON=str(fake_python)
    )
    out, _ = stub.communicate(timeout=30)

    assert stub.returncode == 0
    assert out.strip() == "exec: -m prefect.engine extra-arg"


def _raw_request(socket_path: Path, payload: bytes, fds: bool) -> None:
    """Send a request by hand (as a broken or vanished stub would) and hang up at once."""
    import array
    import socket
    import struct

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(socket_path))
    data = struct.pack("!I", len(payload)) + payload
    if fds:
        rights = array.array("i", [0, 1, 2])
        sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)])
    else:
        sock.sendall(data)
    sock.close()


def test_bad_or_vanished_stubs_never_stop_the_server(
    server: tuple[Path, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    socket_path, process = server
    request = {"env": {"FAKE_SLEEP": "0.2"}, "cwd": str(tmp_path), "argv": []}

    _raw_request(socket_path, b"{not json", fds=True)
    _raw_request(socket_path, json.dumps(request).encode(), fds=True)  # gone before its pid
    _raw_request(socket_path, json.dumps(request).encode(), fds=False)  # no streams

    stub = _stub(socket_path, tmp_path, FAKE_EXIT="5")
    assert stub.wait(timeout=60) == 5
    assert process.poll() is None


def test_a_run_that_ignores_sigterm_is_killed_after_the_grace(
    server: tuple[Path, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    socket_path, _ = server
    stub = _stub(socket_path, tmp_path, FAKE_SLEEP="60", FAKE_STUBBORN="1")
    assert stub.stdout is not None
    run_pid = json.loads(stub.stdout.readline())["pid"]

    stub.kill()  # as the worker's SIGKILL after its own grace
    stub.wait(timeout=10)

    deadline = time.monotonic() + 20
    while _alive(run_pid):
        assert time.monotonic() < deadline, "a run that ignores SIGTERM outlived its stub"
        time.sleep(0.2)


def test_sigterm_stops_taking_runs_and_waits_for_the_running_ones(
    server: tuple[Path, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    socket_path, process = server
    stub = _stub(socket_path, tmp_path, FAKE_SLEEP="2")
    assert stub.stdout is not None
    json.loads(stub.stdout.readline())

    process.send_signal(signal.SIGTERM)

    deadline = time.monotonic() + 10
    while socket_path.exists():
        assert time.monotonic() < deadline, "the socket stayed after SIGTERM"
        time.sleep(0.1)
    assert stub.wait(timeout=30) == 0  # the running run finished normally
    assert process.wait(timeout=30) == 0


def test_a_run_with_the_servers_settings_reuses_them_and_others_get_their_own(
    server: tuple[Path, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    # The server's settings and logging serve a run whose environment makes the same
    # settings (a worker writes them out in its own spelling: True for true); any
    # other run builds its own, logging included.
    socket_path, _ = server
    same = {"PREFECT_LOGGING_LEVEL": "INFO", "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "True"}
    other = {"PREFECT_LOGGING_LEVEL": "DEBUG", "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false"}
    reports = []
    for env in (same, other):
        stub = _stub(socket_path, tmp_path, FAKE_SETTINGS_REPORT="1", **env)
        out, err = stub.communicate(timeout=60)
        assert stub.returncode == 0, err
        reports.append(json.loads(out.splitlines()[-1]))

    assert reports[0]["settings_rebuilt"] is False
    assert (reports[0]["logging_level"], reports[0]["persist_results"]) == ("INFO", True)
    assert reports[1]["settings_rebuilt"] is True
    assert (reports[1]["logging_level"], reports[1]["persist_results"]) == ("DEBUG", False)


SSL_SHARING = textwrap.dedent(
    """
    import json, ssl, sys
    import prefect.client.orchestration as orchestration
    from prefect.client.orchestration import PrefectClient, SyncPrefectClient
    sys.path.insert(0, sys.argv[1])
    import prestart

    made = []
    real = ssl.create_default_context

    def counting(*args, **kwargs):
        made.append(kwargs.get("cafile"))
        return real(*args, **kwargs)

    ssl.create_default_context = counting
    shared = prestart.share_prefect_ssl_contexts()
    built_before = len(made)

    def context(client):
        return client._client._transport._pool._ssl_context

    url = "https://127.0.0.1:9/api"
    contexts = [context(PrefectClient(url)) for _ in range(3)]
    contexts.append(context(SyncPrefectClient(url)))
    other_file = sys.argv[2]
    other = shared.create_default_context(cafile=other_file)
    print(json.dumps({
        "installed": orchestration.ssl is shared,
        "built_before_fork": built_before,
        "built_by_clients": len(made) - built_before - 1,
        "one_context": all(c is contexts[0] for c in contexts),
        "verifies": contexts[0].verify_mode == ssl.CERT_REQUIRED,
        "other_file_other_context": other is not contexts[0],
    }))
    """
)


def test_prefect_clients_share_one_ssl_context_built_before_forking(tmp_path: Path) -> None:
    # Prefect built a context (certifi's whole bundle, 15 ms) for each of the ten or so
    # API clients of a run; the server builds it once and every client shares it.
    import certifi

    other_file = tmp_path / "ca.pem"
    other_file.write_text(Path(certifi.where()).read_text())
    done = subprocess.run(
        [sys.executable, "-c", SSL_SHARING, str(PRESTART.parent), str(other_file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report == {
        "installed": True,
        "built_before_fork": 1,
        "built_by_clients": 0,
        "one_context": True,
        "verifies": True,
        "other_file_other_context": True,
    }


VERSION_CHECK = textwrap.dedent(
    """
    import json, sys, threading
    sys.path.insert(0, sys.argv[1])
    import prefect
    import prestart
    from prefect._internal.version_checking import (
        _api_version_check_key, _is_api_version_check_cached,
    )

    prestart.check_server_version_once()
    url = sys.argv[2]
    print(json.dumps({
        "setting": _is_api_version_check_cached(_api_version_check_key(url, prefect.__version__)),
        "slashed": _is_api_version_check_cached(
            _api_version_check_key(url + "/", prefect.__version__)
        ),
        "threads": threading.active_count(),
    }))
    """
)


@pytest.mark.parametrize("answering", [True, False])
def test_the_server_version_is_checked_once_for_every_run(answering: bool) -> None:
    # Each run asked the Prefect server for its version (the API clients and the
    # websocket ones look the check up under two spellings of the URL): the server
    # checks once, before forking, or leaves it to each run when it cannot.
    import http.server
    import threading

    import prefect

    class Version(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(prefect.__version__).encode()
            self.send_response(200 if self.path == "/api/admin/version" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Version)
    port = httpd.server_address[1]
    if answering:
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
    else:
        httpd.server_close()  # nothing listens on the port
    # Unanswered, with a password in the URL: the message must not repeat it.
    url = f"http://127.0.0.1:{port}/api" if answering else f"http://u:hunter2@127.0.0.1:{port}/api"
    try:
        done = subprocess.run(
            [sys.executable, "-c", VERSION_CHECK, str(PRESTART.parent), url],
            env={**os.environ, "PREFECT_API_URL": url},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        if answering:
            httpd.shutdown()
            httpd.server_close()
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report == {"setting": answering, "slashed": answering, "threads": 1}
    assert ("each run checks" in done.stdout) is not answering
    assert "hunter2" not in done.stdout + done.stderr


WARM_UP_FAILS = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    import prestart

    def broken():
        raise AttributeError("a Prefect upgrade moved this")

    broken.__name__ = "share_prefect_ssl_contexts"
    prestart.share_prefect_ssl_contexts = broken
    prestart._warm_up()
    print("warmed up")
    """
)


def test_a_warm_up_step_that_fails_is_left_to_the_runs(tmp_path: Path) -> None:
    # The warm-ups lean on Prefect's internals: one that breaks after an upgrade must
    # not keep the server from starting (its runs then do that work themselves).
    done = subprocess.run(
        [sys.executable, "-c", WARM_UP_FAILS, str(PRESTART.parent)],
        env={**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "share_prefect_ssl_contexts skipped (AttributeError)" in done.stdout
    assert done.stdout.rstrip().endswith("warmed up")


def test_a_run_of_a_preloaded_module_prints_no_runpy_warning(tmp_path: Path) -> None:
    # Every forked run printed runpy's "found in sys.modules ... unpredictable
    # behaviour" to the worker's log: the engine is imported before the fork by design.
    socket_path = tmp_path / "prestart.sock"
    argv = [sys.executable, str(PRESTART), "serve", "--socket", str(socket_path)]
    process = subprocess.Popen(
        [*argv, "--module", "prefect.task_engine"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not socket_path.exists():
            assert process.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server did not listen"
            time.sleep(0.1)
        stub = _stub(socket_path, tmp_path)
        _, err = stub.communicate(timeout=60)
    finally:
        process.terminate()
        process.wait(10)

    assert stub.returncode == 0, err
    assert "found in sys.modules" not in err
