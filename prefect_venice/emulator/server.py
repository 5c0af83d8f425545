"""HTTP/1.1 front ends (stdlib `http.server`) of the API origin and the private-link origin."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .service import Reply, VeniceService, error

API_PREFIX = "/api/v1"
LEDGER_PATH = "/_emulator/ledger"
REQUESTS_PATH = "/_emulator/requests"
LINK_PREFIX = "/v1/share/read/"
_API_ROUTES = {
    ("GET", "/models"): "models",
    ("POST", "/video/quote"): "quote",
    ("POST", "/video/queue"): "queue",
    ("POST", "/video/retrieve"): "retrieve",
    ("POST", "/video/complete"): "complete",
    ("GET", "/billing/balance"): "balance",
    ("GET", "/billing/usage-history"): "usage_history",
}
_READ_CHUNK = 64 * 1024


class EmulatorHTTPServer(ThreadingHTTPServer):
    """A threading server that can cut its open keep-alive connections on shutdown."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    # The listen backlog. socketserver's default of 5 makes a burst of concurrent connects
    # (a flow fanning out 100 tasks) overflow the accept queue: those clients stall or reset.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], service: VeniceService, role: str) -> None:
        handler = ApiHandler if role == "api" else LinkHandler
        super().__init__(address, handler)
        self.service = service
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def track(self, sock: socket.socket, is_open: bool) -> None:
        """Remember (or forget) a client connection so `close_connections` can end it."""
        with self._open_lock:
            if is_open:
                self._open.add(sock)
            else:
                self._open.discard(sock)

    def close_connections(self) -> None:
        """End every client connection still open (idle keep-alives would linger otherwise)."""
        with self._open_lock:
            for sock in list(self._open):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self._open.clear()


class _Handler(BaseHTTPRequestHandler):
    """Shared request reading and answer writing."""

    protocol_version = "HTTP/1.1"
    server_version = "VeniceEmulator/1.0"
    # Idle keep-alive connections end after this many seconds.
    timeout = 60
    server: EmulatorHTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in separate writes; without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every keep-alive answer.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the ledger is the record, and URLs may hold link tokens."""

    def _read_body(self, limit: int) -> tuple[bytes, bool]:
        """Read the whole request body (Content-Length or chunked); keep at most `limit` bytes."""
        kept = bytearray()
        too_large = False

        def take(piece: bytes) -> None:
            nonlocal too_large
            if too_large or len(kept) + len(piece) > limit:
                too_large = True
                return
            kept.extend(piece)

        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                size_line = self.rfile.readline(1024)
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                while size > 0:
                    piece = self.rfile.read(min(size, _READ_CHUNK))
                    if not piece:
                        raise ConnectionError("request body ended early")
                    take(piece)
                    size -= len(piece)
                self.rfile.readline(8)
        else:
            left = int(self.headers.get("Content-Length") or 0)
            while left > 0:
                piece = self.rfile.read(min(left, _READ_CHUNK))
                if not piece:
                    raise ConnectionError("request body ended early")
                take(piece)
                left -= len(piece)
        return bytes(kept), too_large

    def _abort(self) -> None:
        """Close the connection at once (FIN), as a crashed upstream or a network blip would."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send(self, reply: Reply) -> None:
        if reply.drop_without_answer:
            self._abort()
            return
        try:
            if reply.video is None:
                if reply.raw is not None:
                    payload = reply.raw
                else:
                    payload = b"" if reply.status == 204 else reply.json_bytes()
                self.send_response(reply.status)
                if reply.status != 204 and reply.raw is None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)
                return
            self._send_video(reply)
        except OSError:
            # The client went away mid-answer; nothing is left to tell it.
            self.close_connection = True

    def _send_video(self, reply: Reply) -> None:
        assert reply.video is not None
        start, stop = 0, reply.video.size
        if reply.part is not None:
            start, stop = reply.part[0], reply.part[1] + 1
        self.send_response(reply.status)
        self.send_header("Content-Length", str(stop - start))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        sent = 0
        chunks = reply.video.chunks(start, stop)
        chunk = next(chunks, None)
        while chunk is not None:
            following = next(chunks, None)
            if reply.drop_at is not None and sent + len(chunk) >= reply.drop_at:
                self.wfile.write(chunk[: reply.drop_at - sent])
                self._abort()
                return
            if following is None and reply.on_delivered is not None:
                # Settle the job before the last bytes leave, so a client that asks again at
                # once already sees the outcome (e.g. 404 after delete_media_on_completion).
                reply.on_delivered()
            self.wfile.write(chunk)
            sent += len(chunk)
            chunk = following
        self.wfile.flush()

    def _body_or_abort(self) -> tuple[bytes, bool] | None:
        try:
            return self._read_body(self.server.service.config.max_body_bytes)
        except (ConnectionError, ValueError):
            self.close_connection = True
            return None


class ApiHandler(_Handler):
    """`/api/v1/...` endpoints, the ledger and the request log."""

    def do_GET(self) -> None:
        """Serve GET requests."""
        self._route()

    def do_POST(self) -> None:
        """Serve POST requests."""
        self._route()

    def do_DELETE(self) -> None:
        """Serve DELETE requests (none exist on this origin)."""
        self._route()

    def _route(self) -> None:
        received = self._body_or_abort()
        if received is None:
            return
        body, too_large = received
        parts = urllib.parse.urlsplit(self.path)
        path = parts.path.rstrip("/")
        model_type = urllib.parse.parse_qs(parts.query).get("type", [None])[0]
        service = self.server.service
        if self.command == "GET" and path == LEDGER_PATH:
            snapshot = service.ledger_snapshot()
            self._send(Reply(200, json.loads(json.dumps(snapshot))))
            return
        if self.command == "GET" and path == REQUESTS_PATH:
            self._send(Reply(200, {"requests": service.requests_snapshot()}))
            return
        relative = path[len(API_PREFIX) :] if path.startswith(API_PREFIX) else None
        endpoint = _API_ROUTES.get((self.command, relative or ""))
        if endpoint is None:
            known = {route for _, route in _API_ROUTES}
            status = 405 if relative in known else 404
            self._send(error(status, f"No route for {self.command} {path}"))
            return
        delay = service.latency(endpoint)
        if delay > 0:
            time.sleep(delay)
        authorization = self.headers.get("Authorization")
        reply = service.api(
            endpoint,
            authorization,
            body,
            too_large,
            model_type,
            query=parts.query,
            accept=self.headers.get("Accept"),
        )
        self._send(reply)


class LinkHandler(_Handler):
    """The private-link origin: GET and DELETE on pre-signed download URLs."""

    def do_GET(self) -> None:
        """Download a finished video."""
        self._route()

    def do_DELETE(self) -> None:
        """Revoke a link."""
        self._route()

    def do_POST(self) -> None:
        """Refuse: links take GET and DELETE only."""
        self._route()

    def _route(self) -> None:
        if self._body_or_abort() is None:
            return
        path = urllib.parse.urlsplit(self.path).path
        if not path.startswith(LINK_PREFIX) or self.command not in ("GET", "DELETE"):
            self._send(error(404, "Not found"))
            return
        service = self.server.service
        endpoint = "link_get" if self.command == "GET" else "link_delete"
        delay = service.latency(endpoint)
        if delay > 0:
            time.sleep(delay)
        token = path[len(LINK_PREFIX) :]
        authorization = self.headers.get("Authorization")
        range_header = self.headers.get("Range") if self.command == "GET" else None
        self._send(service.link(self.command, token, authorization, range_header))
