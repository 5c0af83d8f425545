"""An httpcore network backend on asyncio's own transports, for the async client.

httpcore's default async backend reads through anyio's socket stream, which stops
and restarts the socket's reader (two `epoll_ctl` calls) around every 64 KiB it
hands out and copies oversized chunks: httpx.AsyncClient receives a large body at
about half the speed of httpx.Client. `AsyncioBackend` connects with an
`asyncio.Protocol` of its own instead: it buffers what the loop receives (the
loop's reader is paused only while more than `HIGH_WATER` bytes wait unread,
and resumed below `LOW_WATER`) and hands out the received chunks themselves,
slicing only a chunk larger than the read asked for. Connections open through
`loop.create_connection` with happy eyeballs (the next address is tried 250 ms after
the previous one, as anyio does), and close by aborting the transport, as anyio does.

`AsyncioClient` is an httpx.AsyncClient whose default transport uses this backend;
everything else (proxies from the environment, mounts, an injected transport)
stays httpx's own. Under another async library than asyncio (trio) the backend
hands every call to httpcore's own backend for it.
"""

# The `timeout` parameters are httpcore's network-backend interface (ASYNC109 asks for
# anyio.fail_after at the call site instead, which httpcore does not do).
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import collections
import select
import socket
import ssl
import sys
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar, cast

import anyio
import httpcore
import httpx

__all__ = [
    "HIGH_WATER",
    "LOW_WATER",
    "AsyncioBackend",
    "AsyncioClient",
    "AsyncioHTTPTransport",
    "AsyncioStream",
]

#: Unread bytes above which the loop stops reading the socket (the kernel's buffers
#: and TCP's window then hold the sender back) ...
HIGH_WATER = 1024 * 1024
#: ... and below which it reads again. The gap keeps pause/resume rare.
LOW_WATER = 256 * 1024
#: Reads served from the buffer in a row (no wait for data) before one yields to the
#: loop, so that a pending cancellation and the other tasks get their turn.
YIELD_EVERY = 16
#: The delay before the next address is tried while a connect is pending (RFC 8305's
#: recommended value, anyio's too).
HAPPY_EYEBALLS_DELAY = 0.25
#: asyncio's TLS handshake limit when the caller asked for none (asyncio's default
#: would cut it at 60 s): a year.
NO_HANDSHAKE_LIMIT = 365 * 24 * 3600.0

_T = TypeVar("_T")
_Chunk = bytes | memoryview


def _current_library() -> str:
    """Name the running async library as httpcore does (sniffio), "asyncio" without it."""
    try:
        import sniffio
    except ImportError:  # pragma: no cover - sniffio comes with prefect and anyio
        return "asyncio"
    return sniffio.current_async_library()


async def _within(awaitable: Awaitable[_T], timeout: float | None) -> _T:
    """Await in this task with an optional timeout (TimeoutError when it runs out).

    anyio's cancel scope rather than asyncio.wait_for: on Python 3.11 wait_for can
    swallow a cancellation that arrives in the loop turn where the awaitable
    finishes, and the project still supports 3.10 (no asyncio.timeout).
    """
    if timeout is None:
        return await awaitable
    with anyio.fail_after(timeout):
        return await awaitable


def _socket_readable(sock: Any) -> bool:
    """Whether the socket has bytes (or an EOF) waiting, as httpcore's own check asks."""
    fd = -1 if sock is None else sock.fileno()
    if fd < 0:
        return True
    if sys.platform == "win32" or getattr(select, "poll", None) is None:  # pragma: no cover
        ready, _, _ = select.select([fd], [], [], 0)
        return bool(ready)
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class _Protocol(asyncio.Protocol):
    """The receive buffer and flow control of one connection (plain or TLS)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self._chunks: collections.deque[_Chunk] = collections.deque()
        self._buffered = 0
        self._eof = False
        self.lost = False
        self._error: BaseException | None = None
        self.closed = False
        self._reading_paused = False
        self._writing_paused = False
        self._read_waiter: asyncio.Future[bool] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._served = 0  # reads served from the buffer since the last wait or yield

    # --- asyncio's callbacks ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport (start_tls replaces it without calling this again)."""
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        """Buffer what the loop received; stop reading above the high-water mark."""
        if not data:
            return
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > HIGH_WATER and not self._reading_paused:
            self._reading_paused = True
            assert self.transport is not None
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool | None:
        """Note that the peer has finished sending: reads end once the buffer is drained."""
        self._eof = True
        self._wake_reader()
        return None  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        """Remember why the connection ended; wake a waiting read or write."""
        self.lost = True
        self._error = exc
        self._wake_reader()
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pause_writing(self) -> None:
        """Hold writers back: the transport's write buffer is above its high-water mark."""
        self._writing_paused = True

    def resume_writing(self) -> None:
        """Let writers go on: the transport's write buffer has drained below its low-water mark."""
        self._writing_paused = False
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_reader(self) -> None:
        waiter = self._read_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    # --- what the stream asks -----------------------------------------------------------

    @property
    def readable(self) -> bool:
        """Whether a read would return at once (data, EOF or an error waiting)."""
        return bool(self._chunks) or self._eof or self.lost

    def restart_reading(self) -> None:
        """After start_tls: the new transport reads, nothing is paused."""
        self._reading_paused = False
        self._writing_paused = False

    async def read(self, max_bytes: int, timeout: float | None) -> bytes:
        """Up to max_bytes of what was received; b"" at the end of the stream."""
        if self.closed:
            raise httpcore.ReadError("the connection was closed")
        if self._chunks:
            self._served += 1
            if self._served >= YIELD_EVERY:
                # Reads served from the buffer never wait: let the loop run once in a
                # while (before taking anything, so a cancel here loses no data).
                self._served = 0
                await asyncio.sleep(0)
                if self.closed:
                    raise httpcore.ReadError("the connection was closed")
        if not self._chunks:
            self._served = 0
            if not (self._eof or self.lost):
                await self._wait_for_data(timeout)
            if not self._chunks:
                return self._at_end()
        chunks = self._chunks
        first = chunks[0]
        if len(first) == max_bytes or (len(first) < max_bytes and len(chunks) == 1):
            # The common case: one received chunk, handed out as it came.
            chunks.popleft()
            data = first if isinstance(first, bytes) else bytes(first)
        else:
            pieces: list[_Chunk] = []
            wanted = max_bytes
            while wanted and chunks:
                chunk = chunks[0]
                if len(chunk) <= wanted:
                    pieces.append(chunks.popleft())
                    wanted -= len(chunk)
                else:
                    # Split without copying the remainder: it stays a view of the chunk.
                    view = chunk if isinstance(chunk, memoryview) else memoryview(chunk)
                    pieces.append(view[:wanted])
                    chunks[0] = view[wanted:]
                    wanted = 0
            data = bytes(pieces[0]) if len(pieces) == 1 else b"".join(pieces)
        self._buffered -= len(data)
        if self._reading_paused and self._buffered <= LOW_WATER:
            self._reading_paused = False
            if self.transport is not None:
                self.transport.resume_reading()
        return data

    async def _wait_for_data(self, timeout: float | None) -> None:
        if self._read_waiter is not None:
            raise RuntimeError("another read is already waiting on this connection")
        waiter: asyncio.Future[bool] = self._loop.create_future()
        self._read_waiter = waiter
        timer = None
        if timeout is not None:
            timer = self._loop.call_later(timeout, _expire, waiter)
        try:
            received = await waiter
        finally:
            self._read_waiter = None
            if timer is not None:
                timer.cancel()
        if not received:
            raise httpcore.ReadTimeout("timed out waiting for data")

    def discard(self) -> None:
        """Drop what was received and not read (the connection is being closed)."""
        self._chunks.clear()
        self._buffered = 0

    def _at_end(self) -> bytes:
        if self.closed:
            raise httpcore.ReadError("the connection was closed")
        if self._error is not None:
            raise httpcore.ReadError(self._error) from self._error
        return b""

    async def write(self, data: bytes, timeout: float | None) -> None:
        """Hand data to the transport; wait while its write buffer is full."""
        if self.closed or self.lost or self.transport is None or self.transport.is_closing():
            # Nothing would reach the peer (httpcore then still reads a response).
            raise httpcore.WriteError(self._error or "the connection is closed") from self._error
        self.transport.write(data)
        if not self._writing_paused:
            return
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._drain_waiter = waiter
        try:
            await _within(waiter, timeout)
        except TimeoutError as exc:
            raise httpcore.WriteTimeout("timed out sending") from exc
        finally:
            self._drain_waiter = None
        if self.lost:
            raise httpcore.WriteError(self._error or "the connection was lost") from self._error


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One connection of `AsyncioBackend`: httpcore's stream interface over `_Protocol`."""

    def __init__(self, protocol: _Protocol) -> None:
        self._protocol = protocol

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Return up to max_bytes (at least one) received bytes; b"" once the peer is done.

        Raises httpcore.ReadTimeout after `timeout` seconds without data and
        httpcore.ReadError when the connection broke or was closed.
        """
        return await self._protocol.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Send buffer (httpcore.WriteTimeout / httpcore.WriteError on failure)."""
        if buffer:
            await self._protocol.write(buffer, timeout)

    async def aclose(self) -> None:
        """Close the connection at once, dropping unsent and unread bytes.

        As httpcore's own backend (anyio): no TLS shutdown handshake, and no wait for
        the transport's write buffer to drain (transport.close() would wait, and keep
        the socket open for as long as a peer that stopped reading lets it).
        """
        protocol = self._protocol
        transport = protocol.transport
        if protocol.closed or transport is None:
            return
        protocol.closed = True
        protocol.discard()
        transport.abort()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Upgrade the connection to TLS (httpcore.ConnectTimeout / ConnectError on failure)."""
        protocol = self._protocol
        transport = protocol.transport
        if protocol.closed or protocol.lost or transport is None:
            raise httpcore.ConnectError("the connection is closed")
        loop = asyncio.get_running_loop()
        # asyncio's own handshake limit (60 s by default) must not cut ours short, nor
        # set one where the caller asked for none.
        handshake = NO_HANDSHAKE_LIMIT if timeout is None else max(60.0, timeout + 1.0)
        try:
            tls = await _within(
                loop.start_tls(
                    transport,
                    protocol,
                    ssl_context,
                    server_side=False,
                    server_hostname=server_hostname,
                    ssl_handshake_timeout=handshake,
                ),
                timeout,
            )
        except TimeoutError as exc:
            transport.abort()
            raise httpcore.ConnectTimeout(exc) from exc
        except OSError as exc:  # ssl.SSLError included
            transport.abort()
            raise httpcore.ConnectError(exc) from exc
        except BaseException:
            transport.abort()
            raise
        if tls is None:  # pragma: no cover - the transport closed under the handshake
            transport.abort()
            raise httpcore.ConnectError("the connection closed during the TLS handshake")
        protocol.transport = tls
        protocol.restart_reading()
        return self

    def get_extra_info(self, info: str) -> Any:
        """Answer httpcore: ssl_object, client_addr, server_addr, socket, is_readable."""
        transport = self._protocol.transport
        if transport is None:  # pragma: no cover - a stream always has its transport
            return None
        if info == "ssl_object":
            return transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return transport.get_extra_info("sockname")
        if info == "server_addr":
            return transport.get_extra_info("peername")
        if info == "socket":
            return transport.get_extra_info("socket")
        if info == "is_readable":
            # Data, EOF or an error the loop has seen, else what the socket holds now.
            return self._protocol.readable or _socket_readable(transport.get_extra_info("socket"))
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """httpcore network backend on asyncio transports; httpcore's own under trio.

    Pass it as `network_backend` of an httpcore.AsyncConnectionPool. Errors map as
    in httpcore's own backends: timeouts to ConnectTimeout / ReadTimeout /
    WriteTimeout, OSError to ConnectError / ReadError / WriteError.
    """

    def __init__(self) -> None:
        self._others: dict[str, httpcore.AsyncNetworkBackend] = {}

    def _other(self, library: str) -> httpcore.AsyncNetworkBackend:
        """Return httpcore's own backend for another library than asyncio (as AutoBackend)."""
        backend = self._others.get(library)
        if backend is None:
            backend = httpcore.TrioBackend() if library == "trio" else httpcore.AnyIOBackend()
            self._others[library] = backend
        return backend

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Open a TCP connection (happy eyeballs over the resolved addresses)."""
        library = _current_library()
        if library != "asyncio":
            return await self._other(library).connect_tcp(
                host,
                port,
                timeout=timeout,
                local_address=local_address,
                socket_options=socket_options,
            )
        options = list(socket_options or ())
        try:
            return await _within(self._open_tcp(host, port, local_address, options), timeout)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(exc) from exc
        except OSError as exc:
            raise httpcore.ConnectError(exc) from exc

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Open a connection to a Unix domain socket."""
        library = _current_library()
        if library != "asyncio":
            return await self._other(library).connect_unix_socket(
                path, timeout=timeout, socket_options=socket_options
            )
        options = list(socket_options or ())
        try:
            return await _within(self._open_unix(path, options), timeout)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(exc) from exc
        except OSError as exc:
            raise httpcore.ConnectError(exc) from exc

    async def sleep(self, seconds: float) -> None:
        """Sleep on the running library."""
        library = _current_library()
        if library != "asyncio":
            await self._other(library).sleep(seconds)
            return
        await asyncio.sleep(seconds)

    async def _open_tcp(
        self, host: str, port: int, local_address: str | None, options: list[Any]
    ) -> AsyncioStream:
        """Connect as anyio does: happy eyeballs, then the socket options.

        asyncio resolves the host (an IP literal without a getaddrinfo call), starts
        the next address 250 ms after the previous one while it is still pending, and
        binds to local_address if given. The socket options are set once connected,
        as httpcore's own backend sets them.
        """
        loop = asyncio.get_running_loop()
        local_addr = None if local_address is None else (local_address, 0)
        transport, protocol = await loop.create_connection(
            lambda: _Protocol(loop),
            host,
            port,
            local_addr=local_addr,
            happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY,
            interleave=1,
        )
        try:
            if options:
                sock = transport.get_extra_info("socket")
                for option in options:
                    sock.setsockopt(*option)
        except BaseException:
            transport.abort()
            raise
        # A TCP transport sets TCP_NODELAY itself, as httpcore's own backend has it.
        return AsyncioStream(protocol)

    async def _open_unix(self, path: str, options: list[Any]) -> AsyncioStream:
        """Make the socket, set its options and connect it, then hand it to the loop."""
        loop = asyncio.get_running_loop()
        family = socket.AF_UNIX  # type: ignore[attr-defined,unused-ignore]
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            for option in options:
                sock.setsockopt(*option)
            await loop.sock_connect(sock, path)
            _, protocol = await loop.create_connection(lambda: _Protocol(loop), sock=sock)
        except BaseException:
            sock.close()
            raise
        return AsyncioStream(protocol)


class AsyncioHTTPTransport(httpx.AsyncHTTPTransport):
    """httpx.AsyncHTTPTransport whose connection pool runs on `AsyncioBackend`.

    httpx has no public way to choose the pool's network backend: this builds the
    transport as httpx does, then replaces its pool by an identical one (the TLS
    context httpx built, the same limits and options) with the backend. Should httpx's internals
    change (no `_pool`, or another kind of pool), httpx's own pool is kept and
    `network_backend` is None; tests/core/test_aionet.py fails in that case.
    """

    def __init__(
        self,
        verify: ssl.SSLContext | str | bool = True,
        cert: Any = None,
        trust_env: bool = True,
        http1: bool = True,
        http2: bool = False,
        limits: httpx.Limits | None = None,
        uds: str | None = None,
        local_address: str | None = None,
        retries: int = 0,
        socket_options: Iterable[Any] | None = None,
    ) -> None:
        if limits is None:  # httpx's default limits
            limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
        super().__init__(
            verify=verify,
            cert=cert,
            trust_env=trust_env,
            http1=http1,
            http2=http2,
            limits=limits,
            uds=uds,
            local_address=local_address,
            retries=retries,
            socket_options=socket_options,
        )
        #: The backend of this transport's pool; None if httpx's own pool was kept.
        self.network_backend: AsyncioBackend | None = None
        if type(getattr(self, "_pool", None)) is not httpcore.AsyncConnectionPool:
            return
        backend = AsyncioBackend()
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=self._pool._ssl_context,  # the one httpx built: not built twice
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=http1,
            http2=http2,
            uds=uds,
            local_address=local_address,
            retries=retries,
            socket_options=socket_options,
            network_backend=backend,
        )
        self.network_backend = backend


#: The keywords httpx.AsyncClient passes to its `_init_transport` (httpx 0.27-0.28).
_INIT_TRANSPORT_KEYWORDS = frozenset(
    {"verify", "cert", "trust_env", "http1", "http2", "limits", "transport", "app"}
)


class AsyncioClient(httpx.AsyncClient):
    """httpx.AsyncClient whose default transport is `AsyncioHTTPTransport`.

    Only the transport httpx would build by default changes: an injected
    `transport=`, `mounts=` and the proxy transports httpx makes from the
    environment (HTTPS_PROXY, ALL_PROXY, NO_PROXY) are httpx's own, as before.
    """

    def _init_transport(self, *args: Any, **kwargs: Any) -> httpx.AsyncBaseTransport:
        if (
            args
            or kwargs.get("transport") is not None
            or kwargs.get("app") is not None
            or not kwargs.keys() <= _INIT_TRANSPORT_KEYWORDS
        ):
            return super()._init_transport(*args, **kwargs)
        kwargs.pop("transport", None)
        kwargs.pop("app", None)  # httpx 0.27 only
        return AsyncioHTTPTransport(**kwargs)
