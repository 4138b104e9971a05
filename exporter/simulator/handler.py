"""The simulator's HTTP/1.1 front: a threading server and its request handler.

Keep-alive, one JSON response per request with ``Content-Length`` and an ``X-Request-Id``,
and open connections dropped on stop. What to answer is not decided here: every request is
handed, as a plain :class:`~exporter.simulator.wire._Request`, to the ``respond`` callable
the server was built with (None from it drops the connection).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import socket
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import cast

from exporter.simulator.wire import _bad_request, _json, _Request, _Response

__all__: list[str] = []

_logger = logging.getLogger("exporter.simulator")

_MAX_CONTROL_BODY = 16 * 1024 * 1024

_Respond = Callable[[_Request], _Response | None]
"""Answers one request; None: drop the connection."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], respond: _Respond) -> None:
        self.respond = respond
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn); loopback needs none.
        TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hangs up mid-connection is normal (an exporter stopping): log it at
        debug instead of printing a traceback; anything else as the stdlib does."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            _logger.debug("simulator_client_disconnected %s: %s", client_address, error)
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ModelArtsSimulator/1.0"
    timeout = 120

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without NODELAY, Nagle + delayed ACK add ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cast(_Server, self.server).track(self.connection)

    def finish(self) -> None:
        cast(_Server, self.server).untrack(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: object) -> None:
        _logger.debug("simulator_http " + format, *args)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_OPTIONS(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        respond = cast(_Server, self.server).respond
        raw_path, _, raw_query = self.path.partition("?")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > _MAX_CONTROL_BODY:
            self.close_connection = True
            self._write(_bad_request())
            return
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        request = _Request(self.command, raw_path, raw_query, headers, body)
        try:
            response = respond(request)
        except Exception:
            _logger.exception("simulator_handler_failed")
            response = _json(500, {"error_code": "ModelArts.50005000", "error_msg": "Internal."})
        if response is None:
            self.close_connection = True
            return
        self._write(response)

    def _write(self, response: _Response) -> None:
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(response.body)))
            self.send_header("X-Request-Id", secrets.token_hex(16))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
