"""The embedded AWS emulator: moto's server on a loopback port, in a thread of this process.

moto runs unmodified: nothing of it is patched. The emulator only wraps moto's WSGI application
(the one ``moto.server.ThreadedMotoServer`` serves) in two pieces of middleware of its own:

- a host check (``local/hosts.py``): only requests naming ``127.0.0.1:<port>`` or
  ``localhost:<port>`` are answered;
- DynamoDB requests are applied one at a time. Real DynamoDB applies each request atomically,
  and the service relies on that (a conditional write either sees its condition hold and writes,
  or not); moto's backend checks a condition and then writes without a lock, so two concurrent
  requests could both pass one ``version = :v`` check. The lock is taken per HTTP request, by
  its ``X-Amz-Target`` header, and held until the response body is complete: no moto code is
  involved. S3 and SQS requests stay concurrent (SQS long polls must not block anything else).

Where moto still answers differently from DynamoDB, and what that costs, is listed in
docs/LOCAL.md. The benchmark (``bench/``) adds speed-ups of its own on moto's internals, in its
own process only (``bench/moto_speedups.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from local.hosts import HostCheck, wsgi_server

_DYNAMODB_TARGET = "DynamoDB_"


class AtomicDynamoDB:
    """WSGI middleware: DynamoDB requests (``X-Amz-Target: DynamoDB_…``) run one at a time."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith(_DYNAMODB_TARGET):
            return self.app(environ, start_response)
        with self.lock:
            # Consume the body under the lock: the response is fully computed before release.
            body = self.app(environ, start_response)
            try:
                return [b"".join(body)]
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()


class Emulator:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

        # Only requests for the emulator's own names (local/hosts.py); presigned URLs name it so.
        app = HostCheck(AtomicDynamoDB(DomainDispatcherApplication(create_backend_app)), self.port)
        self._server = wsgi_server(self.host, self.port, app, request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="aws-emulator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
