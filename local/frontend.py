"""Serves ``frontend/`` as static files, plus ``/config.js`` pointing the page at the local API.

The same files deploy unchanged to the stage's front-end bucket; there ``config.js`` is written by
the deploy step (or left out, and the page's settings panel asks for the API URL and key).

Text files go out gzip-compressed to browsers that accept it, and every file carries an ``ETag``
with ``Cache-Control: no-cache``: a browser keeps its copy and revalidates it with one small
request (304 when unchanged), so an edited file is seen on the next load, never a stale one.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
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
        if not self._send_static():
            super().do_GET()

    def _send_static(self) -> bool:
        """Answers a GET for a regular file (compressed, with validators); False for anything else."""
        path = self.translate_path(self.path)
        if os.path.isdir(path) and self.path.split("?", 1)[0].endswith("/"):
            path = os.path.join(path, "index.html")
        if not os.path.isfile(path):
            return False
        body = _read(path)
        etag = f'"{hashlib.sha256(body).hexdigest()[:20]}"'
        content_type = self.guess_type(path)
        compress = _compressible(content_type) and "gzip" in self.headers.get("Accept-Encoding", "") and len(body) > 256
        if compress:
            body = _gzipped(path)
            etag = etag[:-1] + '-gz"'
        if etag in [tag.strip() for tag in self.headers.get("If-None-Match", "").split(",")]:
            self.send_response(304)
            self._cache_headers(etag)
            self.end_headers()
            return True
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if compress:
            self.send_header("Content-Encoding", "gzip")
        self._cache_headers(etag)
        self.end_headers()
        self.wfile.write(body)
        return True

    def _cache_headers(self, etag: str) -> None:
        self.send_header("ETag", etag)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Vary", "Accept-Encoding")

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


def _compressible(content_type: str) -> bool:
    return content_type.startswith("text/") or content_type in ("application/javascript", "application/json", "image/svg+xml")


# Keyed by path and modification time: an edited file is read (and compressed) again.
@functools.lru_cache(maxsize=256)
def _read_at(path: str, mtime_ns: int, size: int) -> bytes:
    with open(path, "rb") as file:
        return file.read()


@functools.lru_cache(maxsize=256)
def _gzipped_at(path: str, mtime_ns: int, size: int) -> bytes:
    return gzip.compress(_read_at(path, mtime_ns, size), compresslevel=9, mtime=0)


def _stat_key(path: str) -> tuple[str, int, int]:
    stat = os.stat(path)
    return path, stat.st_mtime_ns, stat.st_size


def _read(path: str) -> bytes:
    return _read_at(*_stat_key(path))


def _gzipped(path: str) -> bytes:
    return _gzipped_at(*_stat_key(path))


def config_script(api_url: str, api_key: str, user_pool: dict[str, str] | None = None) -> bytes:
    """``window.ITEMS_CONFIG``: the API, a default key (local only), and the user pool to sign in to.

    ``user_pool`` is ``{"region", "clientId", "endpoint"}``: the browser talks to the pool's own
    endpoint (Cognito's regional address, or the local emulator), never through this service.
    """
    config: dict[str, object] = {"apiUrl": api_url, "apiKey": api_key}
    if user_pool and user_pool.get("clientId"):
        config["userPool"] = user_pool
    return f"window.ITEMS_CONFIG = {json.dumps(config)};\n".encode()


def bind(host: str, port: int) -> ThreadingHTTPServer:
    """The front end's server, bound to ``host:port`` but not serving yet (``configure`` it first)."""
    handler = type("FrontendHandler", (_Handler,), {"port": port})
    server = ThreadingHTTPServer((host, port), functools.partial(handler, directory=str(FRONTEND)))
    server.daemon_threads = True
    return server


def configure(server: ThreadingHTTPServer, *, api_url: str, api_key: str, user_pool: dict[str, str] | None = None,
              operations: Callable[[], Any] | None = None) -> None:
    handler = server.RequestHandlerClass
    handler.func.config_js = config_script(api_url, api_key, user_pool)  # type: ignore[attr-defined]
    handler.func.operations = staticmethod(operations) if operations else None  # type: ignore[attr-defined]
