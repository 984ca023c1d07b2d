"""``chalice local`` with API Gateway's own error answers made readable by the browser.

In a deployed stage, the answers API Gateway produces itself (authorizer denials 401/403, unknown
routes) carry the stage's CORS headers, so the front end can tell "wrong API key" from "API
unreachable". ``chalice local`` sends those answers without any CORS header, and a browser then
reports only an opaque network failure. This entry point adds ``Access-Control-Allow-Origin``
(from ``CORS_ALLOW_ORIGIN``, as the app's own responses use) to them, then runs the normal CLI:
``python -m local.chalice_local local --port ...`` takes the same arguments as ``chalice``.

It closes one more gap: ``chalice local`` serves through ``http.server``, which answers a method
it has no ``do_<METHOD>`` for (TRACE, QUERY, anything invented) with an HTML 501 — a 5xx for a
client's mistake, which API Gateway never gives. Such a request gets what the app answers for a
known method a route does not have — 405 ``method-not-allowed`` with ``Allow`` — or, off every
route, API Gateway's 403.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from typing import Any

# The methods chalice local's handler serves (``do_GET`` ...); anything else is answered here.
SERVED = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def allow_origin_on_gateway_errors(origin: str) -> None:
    from chalice import local

    send = local.ChaliceRequestHandler._send_error_response

    def send_with_cors(handler: Any, error: Any) -> None:
        error.headers = {**(error.headers or {}), "Access-Control-Allow-Origin": origin}
        send(handler, error)

    local.ChaliceRequestHandler._send_error_response = send_with_cors  # type: ignore[method-assign,assignment]


def route_methods(app: Any, path: str) -> list[str] | None:
    """The methods of the route matching ``path``, or None when no route matches."""
    segments = path.split("?", 1)[0].rstrip("/").split("/")
    for resource, methods in app.routes.items():
        pattern = resource.rstrip("/").split("/")
        if len(pattern) == len(segments) and all(
            p == s or (p.startswith("{") and p.endswith("}") and bool(s)) for p, s in zip(pattern, segments, strict=True)
        ):
            return sorted(methods)
    return None


def answer_unserved_methods(origin: str) -> None:
    from chalice import local

    def unserved(handler: Any) -> None:
        methods = route_methods(handler.local_gateway._app_object, handler.path)
        request_id = str(uuid.uuid4())
        body: dict[str, Any]
        headers = {"Access-Control-Allow-Origin": origin, "X-Request-Id": request_id,
                   "X-Content-Type-Options": "nosniff"}
        if methods is None:
            status, body = 403, {"message": "Missing Authentication Token"}
            headers["Content-Type"] = "application/json"
        else:
            status = 405
            body = {
                "type": "/problems/method-not-allowed",
                "title": "Method not allowed",
                "status": 405,
                "detail": f"{handler.command} is not supported here; use {', '.join(methods)}",
                "request_id": request_id,
            }
            headers.update({"Content-Type": "application/problem+json", "Allow": ", ".join(methods)})
        payload = json.dumps(body).encode()
        handler.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(payload))}.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(payload)

    def find(handler: Any, name: str) -> Any:
        # http.server looks up ``do_<METHOD>``; only the methods chalice local does not serve land here.
        if name.startswith("do_") and name[3:] not in SERVED:
            return lambda: unserved(handler)
        raise AttributeError(name)

    local.ChaliceRequestHandler.__getattr__ = find  # type: ignore[attr-defined]


def main(argv: list[str]) -> int:
    from chalice.cli import main as chalice_main

    allow_origin_on_gateway_errors(os.environ.get("CORS_ALLOW_ORIGIN") or "*")
    answer_unserved_methods(os.environ.get("CORS_ALLOW_ORIGIN") or "*")
    sys.argv = ["chalice", *argv]
    return int(chalice_main() or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
