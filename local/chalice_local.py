"""``chalice local`` with API Gateway's own error answers made readable by the browser.

In a deployed stage, the answers API Gateway produces itself (authorizer denials 401/403, unknown
routes) carry the stage's CORS headers, so the front end can tell "wrong API key" from "API
unreachable". ``chalice local`` sends those answers without any CORS header, and a browser then
reports only an opaque network failure. This entry point adds ``Access-Control-Allow-Origin``
(from ``CORS_ALLOW_ORIGIN``, as the app's own responses use) to them, then runs the normal CLI:
``python -m local.chalice_local local --port ...`` takes the same arguments as ``chalice``.
"""

from __future__ import annotations

import os
import sys
from typing import Any


def allow_origin_on_gateway_errors(origin: str) -> None:
    from chalice import local

    send = local.ChaliceRequestHandler._send_error_response

    def send_with_cors(handler: Any, error: Any) -> None:
        error.headers = {**(error.headers or {}), "Access-Control-Allow-Origin": origin}
        send(handler, error)

    local.ChaliceRequestHandler._send_error_response = send_with_cors  # type: ignore[method-assign,assignment]


def main(argv: list[str]) -> int:
    from chalice.cli import main as chalice_main

    allow_origin_on_gateway_errors(os.environ.get("CORS_ALLOW_ORIGIN") or "*")
    sys.argv = ["chalice", *argv]
    return int(chalice_main() or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
