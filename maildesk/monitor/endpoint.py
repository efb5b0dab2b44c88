"""The HTTP endpoint of `metrics.listen`: `GET /metrics` (Prometheus text format) and
`GET /healthz` (200 "ok", or 503 and what is stuck, in one line). A small threaded server of
its own, beside the event loop: a scrape's queries never hold up the SMTP listener."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import BaseServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from maildesk.monitor.health import Health

log = logging.getLogger(__name__)

INDEX = b"maildesk: GET /metrics (Prometheus), GET /healthz\n"


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "maildesk"

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._answer(200, generate_latest(self.server.registry), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            health = self.server.health()
            self._answer(200 if health.ok else 503, (health.line() + "\n").encode())
        elif path == "/":
            self._answer(200, INDEX)
        else:
            self._answer(404, b"not found\n")

    def _answer(self, code: int, body: bytes, content_type: str = "text/plain; charset=utf-8"
                ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug("metrics endpoint: %s " + format, self.address_string(), *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], registry: CollectorRegistry,
                 health: Callable[[], Health]):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.registry = registry
        self.health = health
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.warning("metrics endpoint: a request from %s failed", client_address, exc_info=True)


class MetricsEndpoint:
    """`metrics.listen` served on a thread of its own; `start` binds (OSError if it cannot)."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry,
                 health: Callable[[], Health]):
        self.host, self.port = host, port
        self._registry = registry
        self._health = health
        self._server: BaseServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        server = _Server((self.host, self.port), self._registry, self._health)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="metrics",
                                        kwargs={"poll_interval": 0.5}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
