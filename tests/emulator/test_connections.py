"""Many clients at once: both origins accept a burst of concurrent connections."""

from __future__ import annotations

import http.client
import threading
import urllib.parse

from prefect_venice.emulator import Emulator
from prefect_venice.emulator.server import EmulatorHTTPServer

CLIENTS = 100


def burst(origin: str, path: str) -> list[int | str]:
    """Open CLIENTS connections at the same moment, one GET each; return statuses or errors."""
    parts = urllib.parse.urlsplit(origin)
    assert parts.hostname is not None and parts.port is not None
    host, port = parts.hostname, parts.port
    start = threading.Barrier(CLIENTS, timeout=10)
    outcomes: list[int | str] = ["not finished"] * CLIENTS

    def one(index: int) -> None:
        start.wait()
        # A connect stuck in an overflowing accept queue stalls for seconds: the timeout
        # turns that into a failure instead of a slow pass.
        connection = http.client.HTTPConnection(host, port, timeout=5)
        try:
            connection.request("GET", path)
            answer = connection.getresponse()
            answer.read()
            outcomes[index] = answer.status
        except OSError as exc:
            outcomes[index] = repr(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=one, args=(index,)) for index in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


def test_api_origin_answers_a_hundred_concurrent_clients(emulator: Emulator) -> None:
    assert burst(emulator.origin, "/api/v1/models") == [200] * CLIENTS


def test_link_origin_answers_a_hundred_concurrent_clients(emulator: Emulator) -> None:
    assert burst(emulator.link_origin, "/v1/share/read/no-such-token") == [404] * CLIENTS


def test_both_origins_listen_with_a_backlog_of_at_least_128() -> None:
    # Both origins are EmulatorHTTPServer instances; socketserver's default backlog is 5.
    assert EmulatorHTTPServer.request_queue_size >= 128
