"""The embedded AWS emulator: moto's server on a loopback port, in a thread of this process.

One difference from moto's own ``ThreadedMotoServer``: DynamoDB requests are applied one at a
time. Real DynamoDB applies each request atomically, and the service relies on that (a conditional
write either sees the condition hold and writes, or not); moto's backend checks a condition and
then writes without a lock, so two concurrent requests could both pass one ``version = :v`` check.
S3 and SQS requests stay concurrent (SQS long polls must not block anything else).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

_DYNAMODB_TARGET = "DynamoDB_"


class _AtomicDynamoDB:
    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith(_DYNAMODB_TARGET):
            with self.lock:
                # Consume the body under the lock: the response is fully computed before release.
                return [b"".join(self.app(environ, start_response))]
        return self.app(environ, start_response)


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
        from werkzeug.serving import make_server

        app = _AtomicDynamoDB(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(self.host, self.port, app, threaded=True, request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="aws-emulator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
