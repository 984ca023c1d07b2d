"""One variant of ``bench/cold_experiments.py`` in a fresh process: ``experiment_child.py VARIANT ACTION``.

The working directory is put first on ``sys.path``: the project (bytecode caches as they are) or a
Lambda-like package built by ``cold_experiments``. Prints wall and CPU milliseconds from before the
first import to the first answer, and the number of modules loaded.
"""

from __future__ import annotations

import time

STARTED, CPU_STARTED = time.perf_counter(), time.process_time()

import json
import os
import sys
import types
from collections.abc import Callable
from typing import Any

TENANT, ITEM_ID, KEY = os.environ["BENCH_TENANT"], os.environ["BENCH_ITEM"], os.environ["BENCH_KEY"]

# The context and event below repeat bench/events.py on purpose: this process may run inside a
# Lambda-like package with no bench/ beside it, and every import here is part of what is measured.


class Context:
    function_name = "items-dev"
    memory_limit_in_mb = 512
    aws_request_id = "experiment"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:items-dev"

    def get_remaining_time_in_millis(self) -> int:
        return 15_000


def api_event(method: str, resource: str, path: str, params: dict[str, str] | None = None,
              body: str | None = None) -> dict[str, Any]:
    return {"resource": resource, "path": path, "httpMethod": method,
            "headers": {"Content-Type": "application/json", "Host": "experiment.local"}, "multiValueHeaders": {},
            "queryStringParameters": None, "multiValueQueryStringParameters": None, "pathParameters": params,
            "stageVariables": None, "body": body, "isBase64Encoded": False,
            "requestContext": {"resourcePath": resource, "httpMethod": method, "requestId": "experiment",
                               "path": "/api" + path, "stage": "api", "identity": {"sourceIp": "127.0.0.1"},
                               "authorizer": {"principalId": TENANT, "tenant": TENANT, "key_id": "key_x"}}}


def without_botocore_docs() -> None:
    """``botocore.docs`` replaced by an empty package and a docstring module of inert classes."""
    import botocore

    docs = types.ModuleType("botocore.docs")
    docs.__path__ = [os.path.join(os.path.dirname(botocore.__file__), "docs")]
    sys.modules["botocore.docs"] = docs
    docstring = types.ModuleType("botocore.docs.docstring")

    class LazyLoadedDocstring(str):
        def __new__(cls, *_args: Any, **_kwargs: Any) -> LazyLoadedDocstring:
            return str.__new__(cls)

    docstring.LazyLoadedDocstring = LazyLoadedDocstring  # type: ignore[attr-defined]
    for name in ("ClientMethodDocstring", "WaiterDocstring", "PaginatorDocstring"):
        setattr(docstring, name, type(name, (LazyLoadedDocstring,), {}))
    sys.modules["botocore.docs.docstring"] = docstring


def authorizer_only() -> Callable[..., Any]:
    """The service's authorizer in an app that imports only what the authorizer needs."""
    from chalice import AuthResponse, Chalice  # type: ignore[attr-defined]

    from chalicelib.auth import apikeys, gateway
    from chalicelib.config import cors as _cors  # noqa: F401  (app.py builds its CORS configuration at import)
    from chalicelib.config.settings import get_settings, require

    app = Chalice(app_name="items", configure_logs=False)

    @app.authorizer(ttl_seconds=60)
    def bearer_authorizer(auth_request: Any) -> Any:
        key = apikeys.parse_bearer(auth_request.token)
        with gateway.unavailable_when_dependencies_fail():
            principal = apikeys.authenticate(key, require(get_settings().table_name, "TABLE_NAME")) if key else None
        if principal is None:
            return AuthResponse(routes=[], principal_id="anonymous")
        return AuthResponse(routes=["*"], principal_id=principal.tenant,
                            context={"tenant": principal.tenant, "key_id": principal.key_id})

    return bearer_authorizer


def main() -> None:
    variant, action = sys.argv[1], sys.argv[2]
    sys.path.insert(0, os.getcwd())
    if variant == "floor":
        import boto3

        client = boto3.client("dynamodb")
        key = {"pk": {"S": f"T#{TENANT}"}, "sk": {"S": f"ITEM#{ITEM_ID}"}}
        assert client.get_item(TableName=os.environ["TABLE_NAME"], Key=key)["Item"]
    else:
        if variant == "nodocs":
            without_botocore_docs()
        if variant == "deferbuild":
            import pydantic

            pydantic.BaseModel.model_config["defer_build"] = True
        if variant == "lazyauth":
            authorizer = authorizer_only()
        else:
            import app

            authorizer = app.bearer_authorizer
        if action == "auth":
            event = {"type": "TOKEN", "authorizationToken": f"Bearer {KEY}",
                     "methodArn": f"arn:aws:execute-api:us-east-1:123456789012:x/api/GET/items/{ITEM_ID}"}
            assert authorizer(event, Context())["principalId"] == TENANT
        elif action == "post":
            body = json.dumps({"name": "experiment", "tags": ["a"], "data": {"n": 1}})
            assert app.app(api_event("POST", "/items", "/items", body=body), Context())["statusCode"] == 201
        else:
            event = api_event("GET", "/items/{item_id}", f"/items/{ITEM_ID}", {"item_id": ITEM_ID})
            assert app.app(event, Context())["statusCode"] == 200
    elapsed, cpu = (time.perf_counter() - STARTED) * 1000, (time.process_time() - CPU_STARTED) * 1000
    sys.stdout.flush()
    print("\n" + json.dumps({"ms": elapsed, "cpu_ms": cpu, "modules": len(sys.modules)}))


main()
