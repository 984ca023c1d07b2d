"""``chalice local``, with one gap of its API Gateway emulation closed: methods it has no handler for.

``chalice local`` serves through ``http.server``, which answers a method it has no ``do_<METHOD>``
for (TRACE, QUERY, anything invented) with an HTML 501 — a 5xx for a client's mistake. API Gateway
never lets such a request reach the app either, and does not answer it with a 5xx. Here it gets the
answer the app gives for a known method a route does not have: 405 ``method-not-allowed`` as a
problem document, with ``Allow`` listing the route's methods.

Everything else is ``chalice local`` itself: same app loading (the stage's environment variables),
same route validation, same request handling. Run by ``local/stack.py`` as
``python -m local.api --host H --port P --stage S``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# http.server dispatches to ``do_<METHOD>``; chalice local defines these.
HANDLED = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _route_methods(app: Any, path: str) -> list[str] | None:
    """The methods of the route matching ``path``, or None when no route matches."""
    segments = path.split("?", 1)[0].rstrip("/").split("/")
    for resource, methods in app.routes.items():
        pattern = resource.rstrip("/").split("/")
        if len(pattern) == len(segments) and all(
            p == s or (p.startswith("{") and p.endswith("}") and s) for p, s in zip(pattern, segments, strict=True)
        ):
            return sorted(methods)
    return None


def _handler_class(app: Any) -> type:
    from chalice.local import ChaliceRequestHandler

    class Handler(ChaliceRequestHandler):  # type: ignore[misc]
        def __getattr__(self, name: str) -> Any:
            if name.startswith("do_") and name[3:] not in HANDLED:
                return self._method_not_allowed
            raise AttributeError(name)

        def _method_not_allowed(self) -> None:
            methods = _route_methods(app, self.path)
            request_id = str(uuid.uuid4())
            body: dict[str, Any]
            extra: dict[str, str]
            if methods is None:
                status, body = 403, {"message": "Missing Authentication Token"}  # as API Gateway answers
                content_type, extra = "application/json", {}
            else:
                status, content_type = 405, "application/problem+json"
                body = {
                    "type": "/problems/method-not-allowed",
                    "title": "Method not allowed",
                    "status": 405,
                    "detail": f"{self.command} is not supported here; use {', '.join(methods)}",
                    "request_id": request_id,
                }
                extra = {"Allow": ", ".join(methods)}
            payload = json.dumps(body).encode()
            self.send_response(status)
            for name, value in {"Content-Type": content_type, "Content-Length": str(len(payload)),
                                "X-Request-Id": request_id, "X-Content-Type-Options": "nosniff", **extra}.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--stage", default="local")
    args = parser.parse_args(argv)

    from chalice.cli.factory import CLIFactory
    from chalice.deploy.validate import validate_routes
    from chalice.local import LocalDevServer

    # As ``chalice local`` does: its log lines (one per request) on stdout, the stage's environment
    # variables set while the app is imported, the routes checked as a deployment would.
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    config = CLIFactory(project_dir=str(ROOT), environ=os.environ).create_config_obj(chalice_stage_name=args.stage)
    app = config.chalice_app
    validate_routes(app.routes)
    server = LocalDevServer(app, config, args.host, args.port, handler_cls=_handler_class(app))
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
