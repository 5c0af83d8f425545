"""The async client's own network backend (prefect_venice/_aionet.py).

Most tests talk to a small HTTP/1.1 server of their own, run on the test's event loop,
which can answer with a large body, close an idle connection, stall, or serve over TLS.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx
import pytest
from core_support import FAST_POLL
from test_client_endpoints import public_request

from prefect_venice import AsyncVeniceClient, VeniceClient
from prefect_venice._aionet import (
    HIGH_WATER,
    LOW_WATER,
    YIELD_EVERY,
    AsyncioBackend,
    AsyncioClient,
    AsyncioHTTPTransport,
    AsyncioStream,
    _Protocol,
)
from prefect_venice.emulator import Emulator

MIB = 1024 * 1024
BIG = os.urandom(40 * MIB)
BIG_SHA256 = hashlib.sha256(BIG).hexdigest()


class Server:
    """A tiny HTTP/1.1 server: keep-alive by default, one behaviour per path."""

    def __init__(self) -> None:
        self.connections = 0
        self.ended = 0
        self.targets: list[str] = []
        self.changed = asyncio.Event()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.server: asyncio.Server | None = None
        self.url = ""

    async def start(self, *, ssl_context: ssl.SSLContext | None = None, uds: str = "") -> None:
        if uds:
            self.server = await asyncio.start_unix_server(self.handle, uds)
            self.url = "http://localhost"
            return
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0, ssl=ssl_context)
        port = self.server.sockets[0].getsockname()[1]
        scheme = "https" if ssl_context else "http"
        self.url = f"{scheme}://{'localhost' if ssl_context else '127.0.0.1'}:{port}"

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.server is not None:
            self.server.close()

    async def wait_for(self, *, ended: int) -> None:
        """Wait (at most 5 s) until `ended` connections have ended on the server's side."""

        async def ended_enough() -> None:
            while self.ended < ended:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(ended_enough(), 5)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        self.connections += 1
        try:
            while await self.answer(reader, writer):
                pass
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()
            self.ended += 1
            self.changed.set()
            self.tasks.discard(task)

    async def answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; False once this connection is done."""
        head = await reader.readuntil(b"\r\n\r\n")
        target = head.split(b" ", 2)[1].decode()
        self.targets.append(target)
        path = urlsplit(target).path
        if path == "/big":
            writer.write(_head(len(BIG)))
            for start in range(0, len(BIG), MIB):
                writer.write(BIG[start : start + MIB])
                await writer.drain()
        elif path == "/close-when-idle":
            writer.write(_head(2) + b"ok")
            await writer.drain()
            return False  # the response said keep-alive: the client pools the connection
        elif path == "/stall":
            writer.write(_head(1000) + b"only a part")
            await writer.drain()
            await reader.read()  # nothing more until the client hangs up
            return False
        elif path == "/silent":
            await reader.read()
            return False
        elif path == "/deaf":
            await asyncio.Event().wait()  # never reads what the client sends
        else:
            writer.write(_head(len(target)) + target.encode())
            await writer.drain()
        return True


def _head(length: int) -> bytes:
    return (
        f"HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n"
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    served = Server()
    await served.start()
    yield served
    await served.stop()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, made by the openssl CLI."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
async def tls_server(certificate: tuple[Path, Path]) -> AsyncIterator[Server]:
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    served = Server()
    await served.start(ssl_context=context)
    yield served
    await served.stop()


async def read_all(response: httpx.Response) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    async for piece in response.aiter_raw():
        size += len(piece)
        digest.update(piece)
    return size, digest.hexdigest()


# --- the async client really uses the backend ----------------------------------------


async def test_the_async_client_connects_through_the_backend(
    emulator: Emulator, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fails if httpx's internals change and the client quietly falls back to anyio."""
    opened: list[str] = []
    connect = AsyncioBackend.connect_tcp

    async def counted(self: AsyncioBackend, host: str, port: int, **kwargs: Any) -> Any:
        opened.append(f"{host}:{port}")
        return await connect(self, host, port, **kwargs)

    monkeypatch.setattr(AsyncioBackend, "connect_tcp", counted)
    async with AsyncVeniceClient(emulator.api_key, base_url=emulator.base_url) as client:
        for http in (client._api, client._links):
            transport = http._transport
            assert isinstance(transport, AsyncioHTTPTransport)
            assert isinstance(transport.network_backend, AsyncioBackend)
        await client.list_video_models()
        assert len(opened) == 1
        # The link client (no bearer key) too.
        answer = await client._links.get(f"{server.url}/small")
        assert answer.status_code == 200
        assert len(opened) == 2


async def test_an_injected_transport_is_used_as_given(emulator: Emulator) -> None:
    mock = httpx.MockTransport(lambda request: httpx.Response(200, json={"data": []}))
    async with AsyncVeniceClient(
        emulator.api_key, base_url=emulator.base_url, transport=mock, link_transport=mock
    ) as client:
        assert client._api._transport is mock
        assert client._links._transport is mock


async def test_proxies_from_the_environment_still_apply(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", server.url)
    async with AsyncioClient() as client:
        answer = await client.get("http://venice.invalid/via-proxy")
    assert answer.status_code == 200
    # The proxy got the request in absolute form: it was asked as a proxy.
    assert server.targets == ["http://venice.invalid/via-proxy"]


# --- bodies and connections ----------------------------------------------------------


async def test_a_large_body_arrives_intact(server: Server) -> None:
    async with AsyncioClient() as client, client.stream("GET", f"{server.url}/big") as answer:
        assert await read_all(answer) == (len(BIG), BIG_SHA256)


async def test_a_large_video_saved_by_the_async_client_matches_the_sync_one(
    emulator_factory: Any, tmp_path: Path
) -> None:
    emulator = emulator_factory(video_bytes=24 * MIB)
    options: dict[str, Any] = {"base_url": emulator.base_url, "poll": FAST_POLL}
    async with AsyncVeniceClient(emulator.api_key, **options) as client:
        job = await client.queue(public_request())
        saved = await client.wait_for_video(job, tmp_path / "async.mp4")
    with VeniceClient(emulator.api_key, **options) as sync_client:
        again = await asyncio.to_thread(sync_client.retrieve, job, tmp_path / "sync.mp4")
    data = (tmp_path / "async.mp4").read_bytes()
    assert len(data) == saved.size_bytes == 24 * MIB
    assert hashlib.sha256(data).hexdigest() == saved.sha256
    assert data == (tmp_path / "sync.mp4").read_bytes()
    assert getattr(again, "sha256", None) == saved.sha256


async def test_many_small_requests_share_one_kept_alive_connection(server: Server) -> None:
    async with AsyncioClient() as client:
        for number in range(200):
            answer = await client.get(f"{server.url}/small/{number}")
            assert answer.text == f"/small/{number}"
    assert server.connections == 1


async def test_an_idle_connection_the_server_closed_is_replaced(server: Server) -> None:
    async with AsyncioClient() as client:
        first = await client.get(f"{server.url}/close-when-idle")
        assert first.text == "ok"
        await server.wait_for(ended=1)
        await asyncio.sleep(0.05)  # the FIN reaches the client's socket
        second = await client.get(f"{server.url}/small")
    assert second.text == "/small"
    assert server.connections == 2


async def test_is_readable_reports_pending_data_and_eof(server: Server) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    stream = await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=5)
    try:
        assert stream.get_extra_info("is_readable") is False
        await stream.write(b"GET /close-when-idle HTTP/1.1\r\nHost: x\r\n\r\n")
        await server.wait_for(ended=1)
        # The answer and the server's FIN are pending, whether or not the loop saw them.
        assert stream.get_extra_info("is_readable") is True
        await asyncio.sleep(0.05)
        assert stream.get_extra_info("is_readable") is True
        received = b""
        while piece := await stream.read(4, timeout=5):
            assert len(piece) <= 4
            received += piece
        assert received.endswith(b"\r\n\r\nok")
        assert await stream.read(4, timeout=5) == b""
        assert stream.get_extra_info("is_readable") is True
    finally:
        await stream.aclose()
    with pytest.raises(httpcore.ReadError):
        await stream.read(10)
    with pytest.raises(httpcore.WriteError):
        await stream.write(b"more")


async def test_addresses_socket_options_and_local_address(server: Server) -> None:
    transport = AsyncioHTTPTransport(
        socket_options=[(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)],
        local_address="127.0.0.1",
    )
    async with AsyncioClient(transport=transport) as client:
        answer = await client.get(f"{server.url}/small")
        stream = answer.extensions["network_stream"]
        assert stream.get_extra_info("socket").getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
        assert stream.get_extra_info("client_addr")[0] == "127.0.0.1"
        assert stream.get_extra_info("server_addr") == server.server.sockets[0].getsockname()  # type: ignore[union-attr]
        assert stream.get_extra_info("ssl_object") is None
        assert stream.get_extra_info("no such thing") is None


async def test_a_unix_socket(tmp_path: Path) -> None:
    served = Server()
    await served.start(uds=str(tmp_path / "http.sock"))
    try:
        transport = AsyncioHTTPTransport(uds=str(tmp_path / "http.sock"))
        async with AsyncioClient(transport=transport) as client:
            answer = await client.get(f"{served.url}/over-unix")
        assert answer.text == "/over-unix"
    finally:
        await served.stop()


# --- errors map as httpcore's own backends map them ----------------------------------


async def test_a_stalled_body_times_out_as_read_timeout(server: Server) -> None:
    timeout = httpx.Timeout(5.0, read=0.2)
    async with AsyncioClient(timeout=timeout) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(f"{server.url}/silent")
        async with client.stream("GET", f"{server.url}/stall") as answer:
            with pytest.raises(httpx.ReadTimeout):
                await answer.aread()


async def test_a_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with AsyncioClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{port}/")


async def test_an_unknown_host_is_a_connect_error() -> None:
    async with AsyncioClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("http://venice-emulator.invalid/")


async def test_a_connect_that_does_not_finish_is_a_connect_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def never(*args: Any, **kwargs: Any) -> None:
        await asyncio.sleep(3600)

    monkeypatch.setattr(asyncio.get_running_loop(), "sock_connect", never)
    async with AsyncioClient(timeout=httpx.Timeout(5.0, connect=0.1)) as client:
        with pytest.raises(httpx.ConnectTimeout):
            await client.get("http://127.0.0.1:9/")


async def test_a_first_address_that_never_answers_does_not_hold_up_the_next(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Happy eyeballs: the next address is tried 250 ms on, not after the connect timeout."""
    loop = asyncio.get_running_loop()
    port = int(server.url.rsplit(":", 1)[1])
    resolve, connect = loop.getaddrinfo, loop.sock_connect

    async def two_addresses(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host in ("dual.test", b"dual.test"):
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.2", port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
            ]
        return await resolve(host, *args, **kwargs)

    async def black_hole(sock: socket.socket, address: Any) -> None:
        if address[0] == "127.0.0.2":  # a SYN dropped: no answer, ever
            await asyncio.sleep(3600)
        await connect(sock, address)

    monkeypatch.setattr(loop, "getaddrinfo", two_addresses)
    monkeypatch.setattr(loop, "sock_connect", black_hole)
    async with AsyncioClient(timeout=httpx.Timeout(5.0, connect=3.0)) as client:
        started = time.monotonic()
        answer = await client.get(f"http://dual.test:{port}/eyeballs")
        elapsed = time.monotonic() - started
    assert answer.text == "/eyeballs"
    assert elapsed < 2.0


async def test_an_ip_address_is_not_resolved(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_resolver(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("getaddrinfo called for an IP address")

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", no_resolver)
    async with AsyncioClient() as client:
        assert (await client.get(f"{server.url}/literal")).text == "/literal"


async def test_a_cancel_that_lands_as_the_connect_finishes_is_not_lost(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """asyncio.wait_for on Python 3.11 would return the connection and drop the cancel."""
    loop = asyncio.get_running_loop()
    create_connection = loop.create_connection
    request: asyncio.Task[httpx.Response] | None = None

    async def cancelled_on_completion(*args: Any, **kwargs: Any) -> Any:
        made = await create_connection(*args, **kwargs)
        assert request is not None
        request.cancel()  # in the same loop turn as the connect's completion
        return made

    monkeypatch.setattr(loop, "create_connection", cancelled_on_completion)
    async with AsyncioClient(timeout=5.0) as client:
        request = asyncio.create_task(client.get(f"{server.url}/small"))
        with pytest.raises(asyncio.CancelledError):
            await request


# --- TLS -------------------------------------------------------------------------------


async def test_tls_with_a_trusted_self_signed_certificate(
    tls_server: Server, certificate: tuple[Path, Path]
) -> None:
    trusted = ssl.create_default_context(cafile=str(certificate[0]))
    async with AsyncioClient(verify=trusted) as client:
        async with client.stream("GET", f"{tls_server.url}/big") as answer:
            assert answer.extensions["network_stream"].get_extra_info("ssl_object") is not None
            assert await read_all(answer) == (len(BIG), BIG_SHA256)
        for number in range(20):
            small = await client.get(f"{tls_server.url}/small/{number}")
            assert small.text == f"/small/{number}"
        assert tls_server.connections == 1
        first = await client.get(f"{tls_server.url}/close-when-idle")
        assert first.text == "ok"
        await tls_server.wait_for(ended=1)
        await asyncio.sleep(0.05)
        assert (await client.get(f"{tls_server.url}/small")).text == "/small"
        assert tls_server.connections == 2


async def test_tls_with_an_untrusted_certificate_is_a_connect_error(tls_server: Server) -> None:
    async with AsyncioClient(verify=ssl.create_default_context()) as client:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.get(f"{tls_server.url}/small")


async def test_a_tls_handshake_that_does_not_finish_is_a_connect_timeout(
    server: Server, certificate: tuple[Path, Path]
) -> None:
    # A plain-HTTP server never answers the ClientHello with a ServerHello ... it waits
    # for the end of a request head that never comes.
    trusted = ssl.create_default_context(cafile=str(certificate[0]))
    https = server.url.replace("http://", "https://")
    async with AsyncioClient(verify=trusted, timeout=httpx.Timeout(5.0, connect=0.3)) as client:
        with pytest.raises(httpx.ConnectTimeout):
            await client.get(f"{https}/small")


async def test_without_a_timeout_asyncios_handshake_limit_does_not_apply(
    server: Server, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """timeout=None means no limit: asyncio's default one (60 s, here 0.2 s) must not cut in."""
    import asyncio.constants

    monkeypatch.setattr(asyncio.constants, "SSL_HANDSHAKE_TIMEOUT", 0.2)
    trusted = ssl.create_default_context(cafile=str(certificate[0]))
    https = server.url.replace("http://", "https://")
    async with AsyncioClient(verify=trusted, timeout=None) as client:
        with pytest.raises(asyncio.TimeoutError):  # still waiting, as asked
            await asyncio.wait_for(client.get(f"{https}/small"), 1.0)


def test_the_tls_context_httpx_built_is_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx._transports.default as httpx_default

    built: list[ssl.SSLContext] = []
    create = httpx.create_ssl_context

    def counted(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        built.append(create(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(httpx_default, "create_ssl_context", counted)
    monkeypatch.setattr(httpx, "create_ssl_context", counted)
    transport = AsyncioHTTPTransport()
    assert transport.network_backend is not None
    assert len(built) == 1
    assert transport._pool._ssl_context is built[0]


# --- cancellation ----------------------------------------------------------------------


async def test_a_cancelled_read_closes_the_connection_and_hangs_nothing(server: Server) -> None:
    async with AsyncioClient() as client:
        reading = asyncio.Event()

        async def consume() -> None:
            async with client.stream("GET", f"{server.url}/stall") as answer:
                reading.set()
                await answer.aread()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(reading.wait(), 5)
        await asyncio.sleep(0.05)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=5)
        assert done == {task}, "the cancelled read hangs"
        assert task.cancelled()
        # The client dropped the half-read connection: the server sees it end ...
        await server.wait_for(ended=1)
        # ... and the next request gets a fresh one.
        assert (await client.get(f"{server.url}/small")).text == "/small"
        assert server.connections == 2


async def test_a_cancelled_wait_leaves_no_timer_or_waiter(server: Server) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    stream = await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=5)
    try:
        task = asyncio.create_task(stream.read(100, timeout=60))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The stream still works: a second read may wait again, and then times out.
        with pytest.raises(httpcore.ReadTimeout):
            await stream.read(100, timeout=0.05)
    finally:
        await stream.aclose()


async def test_closing_with_unsent_bytes_frees_the_socket_at_once(server: Server) -> None:
    """A peer that stopped reading must not keep the socket open (transport.close() would)."""
    port = int(server.url.rsplit(":", 1)[1])
    stream = await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=5)
    head = f"POST /deaf HTTP/1.1\r\nHost: x\r\nContent-Length: {len(BIG)}\r\n\r\n"
    await stream.write(head.encode(), timeout=5)
    # More than the kernel's buffers hold: the rest waits in the transport's buffer.
    with pytest.raises(httpcore.WriteTimeout):
        await stream.write(BIG, timeout=0.3)
    sock = stream.get_extra_info("socket")
    assert sock.fileno() >= 0
    await stream.aclose()
    await asyncio.sleep(0.05)
    assert sock.fileno() == -1, "the socket stays open while unsent bytes wait"
    assert stream._protocol.lost  # type: ignore[attr-defined]


async def test_closing_drops_the_unread_bytes() -> None:
    protocol = _Protocol(asyncio.get_running_loop())
    protocol.connection_made(FakeTransport())
    protocol.data_received(bytes(MIB))
    await AsyncioStream(protocol).aclose()
    assert protocol.transport.calls == ["abort"]  # type: ignore[union-attr]
    assert protocol._buffered == 0
    assert not protocol._chunks
    with pytest.raises(httpcore.ReadError):
        await protocol.read(100, timeout=1)


# --- the receive buffer ----------------------------------------------------------------


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")

    def abort(self) -> None:
        self.calls.append("abort")


async def test_reads_never_exceed_max_bytes_and_split_without_losing_bytes() -> None:
    protocol = _Protocol(asyncio.get_running_loop())
    protocol.connection_made(FakeTransport())
    chunks = [os.urandom(size) for size in (10, 300_000, 1, 65_536, 70_000, 5)]
    for chunk in chunks:
        protocol.data_received(chunk)
    protocol.eof_received()
    out = []
    for max_bytes in (65_536, 7, 1, 100_000) * 1000:
        piece = await protocol.read(max_bytes, timeout=1)
        assert isinstance(piece, bytes)
        assert 0 < len(piece) <= max_bytes or not piece
        if not piece:
            break
        out.append(piece)
    assert b"".join(out) == b"".join(chunks)
    assert await protocol.read(10, timeout=1) == b""


async def test_a_whole_chunk_is_handed_out_as_it_came() -> None:
    protocol = _Protocol(asyncio.get_running_loop())
    protocol.connection_made(FakeTransport())
    chunk = os.urandom(65_536)
    protocol.data_received(chunk)
    assert await protocol.read(65_536, timeout=1) is chunk


async def test_reading_pauses_above_the_high_water_mark_and_resumes_below_the_low() -> None:
    protocol = _Protocol(asyncio.get_running_loop())
    transport = FakeTransport()
    protocol.connection_made(transport)
    block = bytes(256 * 1024)
    received = 0
    while received <= HIGH_WATER:
        protocol.data_received(block)
        received += len(block)
        # Paused once, not per chunk.
        assert transport.calls == ([] if received <= HIGH_WATER else ["pause"])
    protocol.data_received(block)
    received += len(block)
    assert transport.calls == ["pause"]
    while received - len(block) > LOW_WATER:
        await protocol.read(len(block), timeout=1)
        received -= len(block)
        assert transport.calls == ["pause"]
    await protocol.read(len(block), timeout=1)
    assert transport.calls == ["pause", "resume"]


async def test_a_connection_lost_with_an_error_is_a_read_error_after_the_data() -> None:
    protocol = _Protocol(asyncio.get_running_loop())
    protocol.connection_made(FakeTransport())
    protocol.data_received(b"last bytes")
    protocol.connection_lost(ConnectionResetError("reset by peer"))
    assert await protocol.read(100, timeout=1) == b"last bytes"
    with pytest.raises(httpcore.ReadError, match="reset by peer"):
        await protocol.read(100, timeout=1)


async def test_reads_served_from_the_buffer_let_other_tasks_run() -> None:
    protocol = _Protocol(asyncio.get_running_loop())
    protocol.connection_made(FakeTransport())
    for _ in range(10 * YIELD_EVERY):
        protocol.data_received(bytes(1000))
    protocol.eof_received()
    served = 0

    async def drain() -> None:
        nonlocal served
        while await protocol.read(1000, timeout=1):
            served += 1

    task = asyncio.create_task(drain())
    await asyncio.sleep(0)  # the task's first step: it must yield before reading it all
    assert task.cancel(), "the reads never yielded to the loop"
    with pytest.raises(asyncio.CancelledError):
        await task
    assert 0 < served < 10 * YIELD_EVERY
    # The cancelled read took nothing: the rest is still there.
    assert protocol._buffered == (10 * YIELD_EVERY - served) * 1000


async def test_a_slow_reader_holds_at_most_about_a_mebibyte_per_connection(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The receive buffer is the backend's share of the streaming tests' 8 MiB budget."""
    received = _Protocol.data_received
    peak = 0

    def watched(self: _Protocol, data: bytes) -> None:
        nonlocal peak
        received(self, data)
        peak = max(peak, self._buffered)

    monkeypatch.setattr(_Protocol, "data_received", watched)
    async with AsyncioClient() as client, client.stream("GET", f"{server.url}/big") as answer:
        size = 0
        async for piece in answer.aiter_raw():
            size += len(piece)
            await asyncio.sleep(0.001)  # slower than the loopback network
            if size >= 16 * MIB:
                break
    # At most 1 MiB (the high-water mark) plus the loop's last receive (up to 256 KiB).
    assert 0 < peak <= MIB + 256 * 1024, f"{peak} bytes buffered"


# --- other async libraries -------------------------------------------------------------


@pytest.fixture
def threaded_server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            body = self.path.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_under_trio_httpcores_own_backend_is_used(threaded_server: str) -> None:
    trio = pytest.importorskip("trio")

    async def fetch() -> str:
        async with AsyncioClient() as client:
            await AsyncioBackend().sleep(0)
            return (await client.get(f"{threaded_server}/under-trio")).text

    assert trio.run(fetch) == "/under-trio"
