"""The HTTP endpoint: ``/metrics`` from the exposition cache, ``/``, ``/healthz``, ``/readyz``.

A stdlib ``ThreadingHTTPServer`` in its own thread. ``/metrics`` only picks prepared bytes
(text or OpenMetrics, plain or gzip) by the request's ``Accept`` and ``Accept-Encoding``;
nothing is rendered per scrape.

With ``--web.config.file`` (``exporter.webconfig``) every path answers only over TLS and
with basic auth, as configured. The TLS handshake runs in the connection's own thread, so a
slow or silent client holds up no one else.
"""

from __future__ import annotations

import html
import socket
import ssl
import sys
import threading
from collections.abc import Callable, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

from structlog.typing import FilteringBoundLogger

from exporter import __version__
from exporter.logs import make_logger
from exporter.webconfig import WebConfigFile

__all__ = ["MetricsServer", "Payload", "Reload", "parse_listen_address"]

#: (openmetrics, gzipped) -> (content type, parts) of a /metrics answer: its bytes are the
#: parts one after the other.
Payload = Callable[[bool, bool], tuple[str, Sequence[bytes]]]
#: Reloads the configuration for POST /-/reload: None when the new one is in effect, else
#: why it was rejected (answered 400); raises when no reload can be made now (503).
Reload = Callable[[], str | None]
#: The largest POST body read (and ignored); a larger one closes the connection.
_MAX_POST_BODY = 65536


def parse_listen_address(text: str) -> tuple[str, int]:
    """``:10072``, ``127.0.0.1:10072`` or ``[::1]:10072`` → (host, port); '' = all addresses."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected [host]:port, got {text!r}")
    return host.removeprefix("[").removesuffix("]"), int(port)


def _landing_page(version: str) -> bytes:
    return f"""<!doctype html>
<html><head><title>ModelArts exporter</title></head>
<body><h1>ModelArts exporter</h1><p>Version {html.escape(version)}</p>
<ul><li><a href="/metrics">/metrics</a></li><li><a href="/healthz">/healthz</a></li>
<li><a href="/readyz">/readyz</a></li></ul></body></html>
""".encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    payload: Payload
    ready: Callable[[], bool]
    web: WebConfigFile | None = None
    reload: Reload | None = None
    log: FilteringBoundLogger

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A request failed in its thread. A socket error is the client leaving (a reset, a
        broken pipe, a TLS alert): a debug entry. Anything else is one JSON entry with its
        traceback, never a bare traceback on stderr as the stdlib would print."""
        failure = sys.exc_info()[1]
        if isinstance(failure, OSError):
            self.log.debug("http_connection_failed", error=repr(failure))
        else:
            self.log.exception("http_request_failed")

    def finish_request(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        """In the connection's thread: the TLS handshake first, when TLS is configured."""
        context = None if self.web is None else self.web.current().tls
        if context is None:
            super().finish_request(request, client_address)
            return
        connection = _tls_handshake(cast(socket.socket, request), context)
        if connection is not None:
            try:
                super().finish_request(connection, client_address)
            finally:
                self.shutdown_request(connection)


#: The answer to a plain HTTP request on a TLS port, as Go's servers give it.
_PLAIN_HTTP_ANSWER = (
    b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Connection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
)
_TLS_HANDSHAKE_RECORD = b"\x16"


def _tls_handshake(request: socket.socket, context: ssl.SSLContext) -> ssl.SSLSocket | None:
    """The TLS connection; None when the client failed the handshake or spoke plain HTTP
    (which is answered 400). Silent clients give up after the handler's timeout."""
    request.settimeout(_Handler.timeout)
    try:
        if request.recv(1, socket.MSG_PEEK) not in (b"", _TLS_HANDSHAKE_RECORD):
            request.recv(65536)  # closing with unread data would reset the answer away
            request.sendall(_PLAIN_HTTP_ANSWER)
            return None
        return context.wrap_socket(request, server_side=True)
    except OSError:  # ssl.SSLError, timeouts and resets included
        return None


class _Server6(_Server):
    address_family = socket.AF_INET6

    def server_bind(self) -> None:
        if self.server_address[0] == "::":  # dual-stack: also accept IPv4
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def _bind(host: str, port: int) -> _Server:
    """All addresses (dual-stack where the kernel has IPv6), or the one given."""
    if host == "":
        try:
            return _Server6(("::", port), _Handler)
        except OSError:
            return _Server(("0.0.0.0", port), _Handler)  # noqa: S104 - ':port' means all
    return (_Server6 if ":" in host else _Server)((host, port), _Handler)


class MetricsServer:
    """Serves ``payload(openmetrics, gzipped)`` on /metrics until ``stop()``;
    ``ready()`` decides /readyz. POST /-/reload calls ``reload``; without one (no
    ``--web.enable-lifecycle``) it is answered 403, as Prometheus does. Requests that fail
    are logged to ``log``."""

    def __init__(
        self,
        listen_address: str,
        payload: Payload,
        ready: Callable[[], bool],
        web: WebConfigFile | None = None,
        *,
        reload: Reload | None = None,
        log: FilteringBoundLogger | None = None,
    ) -> None:
        host, port = parse_listen_address(listen_address)
        self._httpd = _bind(host, port)
        self._httpd.log = log or make_logger()
        self._httpd.payload = payload
        self._httpd.ready = ready
        self._httpd.web = web
        self._httpd.reload = reload
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="metrics-server", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = f"modelarts-exporter/{__version__}"
    sys_version = ""
    #: An idle or stalled connection is closed after this many seconds (no thread pile-up).
    timeout = 30

    def setup(self) -> None:
        super().setup()
        # Headers and body are two writes; without this, Nagle's algorithm holds the body
        # back until the client's delayed ACK (~40 ms) on every small keep-alive response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def parse_request(self) -> bool:
        """Once the headers are read: refuse any method and path without valid basic auth."""
        if not super().parse_request():
            return False
        web = cast(_Server, self.server).web
        if web is None or web.current().authorized(self.headers.get("Authorization")):
            return True
        headers = {"WWW-Authenticate": "Basic"}
        if self.headers.get("Content-Length", "0") != "0" or "Transfer-Encoding" in self.headers:
            headers["Connection"] = "close"  # the unread body would be taken for a request
        body = b"unauthorized\n"
        text = "text/plain; charset=utf-8"
        self._send(HTTPStatus.UNAUTHORIZED, text, body, self.command == "HEAD", headers)
        return False

    def do_GET(self) -> None:
        self._route(head=False)

    def do_HEAD(self) -> None:
        self._route(head=True)

    def _route(self, *, head: bool) -> None:
        server = cast(_Server, self.server)
        path = self.path.split("?", 1)[0]
        text = "text/plain; charset=utf-8"
        if path == "/metrics":
            self._metrics(server.payload, head)
        elif path == "/":
            self._send(HTTPStatus.OK, "text/html; charset=utf-8", _landing_page(__version__), head)
        elif path == "/healthz":
            self._send(HTTPStatus.OK, text, b"ok\n", head)
        elif path == "/readyz" and server.ready():
            self._send(HTTPStatus.OK, text, b"ready\n", head)
        elif path == "/readyz":
            body = b"not ready: first poll cycle not finished\n"
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, text, body, head)
        elif path == "/-/reload":
            body = b"only POST reloads the configuration\n"
            self._send(HTTPStatus.METHOD_NOT_ALLOWED, text, body, head, {"Allow": "POST"})
        else:
            self._send(HTTPStatus.NOT_FOUND, text, b"not found\n", head)

    def do_POST(self) -> None:
        """POST /-/reload; every other path takes GET and HEAD only."""
        server = cast(_Server, self.server)
        self._skip_body()
        path = self.path.split("?", 1)[0]
        text = "text/plain; charset=utf-8"
        if path != "/-/reload":
            allow = {"Allow": "GET, HEAD"}
            self._send(HTTPStatus.METHOD_NOT_ALLOWED, text, b"method not allowed\n", False, allow)
            return
        if server.reload is None:
            body = b"Lifecycle API is not enabled: start with --web.enable-lifecycle\n"
            self._send(HTTPStatus.FORBIDDEN, text, body, False)
            return
        try:
            error = server.reload()
        except Exception as exc:  # noqa: BLE001 - e.g. stopping: the client is told why
            body = f"cannot reload now: {exc or type(exc).__name__}\n".encode()
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, text, body, False)
            return
        if error is None:
            self._send(HTTPStatus.OK, text, b"configuration reloaded\n", False)
        else:
            body = f"failed to reload config: {error}\n".encode()
            self._send(HTTPStatus.BAD_REQUEST, text, body, False)

    def _skip_body(self) -> None:
        """Read a POST body away, so that the connection can serve the next request."""
        length = self.headers.get("Content-Length", "0")
        chunked = "Transfer-Encoding" in self.headers
        if chunked or not length.isdigit() or int(length) > _MAX_POST_BODY:
            self.close_connection = True
        else:
            self.rfile.read(int(length))

    def _metrics(self, payload: Payload, head: bool) -> None:
        openmetrics = "application/openmetrics-text" in self.headers.get("Accept", "")
        gzipped = "gzip" in self.headers.get("Accept-Encoding", "")
        content_type, parts = payload(openmetrics, gzipped)
        headers = {"Vary": "Accept, Accept-Encoding"}
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        self._send(HTTPStatus.OK, content_type, parts, head, headers)

    def _send(
        self,
        status: HTTPStatus,
        content_type: str,
        body: bytes | Sequence[bytes],
        head: bool,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer ``body``: bytes, or parts sent one after the other (not joined)."""
        parts = (body,) if isinstance(body, bytes) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(sum(len(part) for part in parts)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            for part in parts:
                self.wfile.write(part)

    def log_message(self, format: str, *args: object) -> None:
        """Access logs are not written: scrapes would drown the poll logs."""
