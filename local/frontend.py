"""Serves ``frontend/`` as static files, plus ``/config.js`` pointing the page at the local API.

The same files deploy unchanged to the stage's front-end bucket; there ``config.js`` is written by
the deploy step (or left out, and the page's settings panel asks for the API URL and key).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from local.hosts import REFUSAL, allowed

FRONTEND = Path(__file__).resolve().parent.parent / "frontend"
OPERATIONS_PATH = "/operations.json"


class _Handler(SimpleHTTPRequestHandler):
    config_js = b""
    port = 0
    operations: Callable[[], Any] | None = None

    def parse_request(self) -> bool:
        """Only requests for this server's own names are answered (local/hosts.py)."""
        if not super().parse_request():
            return False
        if allowed(self.headers.get("Host"), self.port):
            return True
        self.close_connection = True
        self.send_response(403)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(REFUSAL)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(REFUSAL)
        return False

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == OPERATIONS_PATH:
            self._operations()
            return
        if self.path.split("?", 1)[0] == "/config.js":
            self.send_response(200)
            self.send_header("Content-Type", "text/javascript; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(self.config_js)))
            self.end_headers()
            self.wfile.write(self.config_js)
            return
        super().do_GET()

    def _operations(self) -> None:
        """The local stack's operations data (local/operations.py); a deployed front end has none (404)."""
        if self.operations is None:
            self.send_error(404)
            return
        body = json.dumps(self.operations()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def end_headers(self) -> None:
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base
        pass


def config_script(api_url: str, api_key: str) -> bytes:
    config = {"apiUrl": api_url, "apiKey": api_key}
    return f"window.ITEMS_CONFIG = {json.dumps(config)};\n".encode()


def bind(host: str, port: int) -> ThreadingHTTPServer:
    """The front end's server, bound to ``host:port`` but not serving yet (``configure`` it first)."""
    handler = type("FrontendHandler", (_Handler,), {"port": port})
    server = ThreadingHTTPServer((host, port), functools.partial(handler, directory=str(FRONTEND)))
    server.daemon_threads = True
    return server


def configure(server: ThreadingHTTPServer, *, api_url: str, api_key: str,
              operations: Callable[[], Any] | None = None) -> None:
    handler = server.RequestHandlerClass
    handler.func.config_js = config_script(api_url, api_key)  # type: ignore[attr-defined]
    handler.func.operations = staticmethod(operations) if operations else None  # type: ignore[attr-defined]
