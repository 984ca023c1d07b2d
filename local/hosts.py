"""Each local server answers only to its own names: ``127.0.0.1:<port>`` and ``localhost:<port>``.

A page on any other site can make the browser resolve its own host name to 127.0.0.1 (DNS
rebinding) and then read the local servers' answers as same-origin: ``config.js`` with its API
key, the API, the emulator's data. Such requests carry the attacker's name in ``Host``; refusing
every name but our own closes that door (docs/LOCAL.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

NAMES = ("127.0.0.1", "localhost")


def allowed(host_header: str | None, port: int) -> bool:
    """Whether ``Host`` names this server (an absent port means 80, which is never ours here)."""
    if not host_header:
        return False
    return host_header.strip().lower() in {f"{name}:{port}" for name in NAMES}


class HostCheck:
    """WSGI middleware: requests for any other host get ``refuse(environ, start_response)``."""

    def __init__(
        self,
        app: Callable[..., Iterable[bytes]],
        port: int,
        refuse: Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]] | None = None,
    ) -> None:
        self.app = app
        self.port = port
        self.refuse = refuse or plain_refusal

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if allowed(environ.get("HTTP_HOST"), self.port):
            return self.app(environ, start_response)
        drain(environ)
        return self.refuse(environ, start_response)


REFUSAL = b"This server answers only to 127.0.0.1 and localhost.\n"


def plain_refusal(_environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response(
        "403 Forbidden",
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(REFUSAL)))],
    )
    return [REFUSAL]


def drain(environ: dict[str, Any], limit: int = 10 * 1024 * 1024) -> bool:
    """Read and drop the request body, so the connection stays in step; False when it is larger
    than ``limit`` (then the caller must close the connection)."""
    from werkzeug.wsgi import get_input_stream

    stream = get_input_stream(environ)  # empty without Content-Length or chunked encoding
    read = 0
    while True:
        chunk = stream.read(65536)
        if not chunk:
            return True
        read += len(chunk)
        if read > limit:
            return False


def wsgi_server(host: str, port: int, app: Callable[..., Iterable[bytes]], **options: Any) -> Any:
    """A threaded werkzeug server on ``host:port``, not serving yet.

    The socket is bound here, so a busy port raises ``OSError`` (EADDRINUSE) to the caller
    instead of werkzeug's own message and exit.
    """
    import socket

    from werkzeug.serving import make_server

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        # werkzeug serves a duplicate of this descriptor; this one is closed on leaving.
        return make_server(host, port, app, threaded=True, fd=sock.fileno(), **options)
