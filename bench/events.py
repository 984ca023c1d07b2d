"""Lambda-shaped events for the benchmarks: what API Gateway hands the function."""

from __future__ import annotations

import uuid
from typing import Any


class FakeLambdaContext:
    function_name = "items-dev"
    memory_limit_in_mb = 512
    aws_request_id = "bench"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:items-dev"

    def get_remaining_time_in_millis(self) -> int:
        return 15_000


def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


def api_event(method: str, resource: str, path: str, tenant: str, path_params: dict[str, str] | None = None,
              query: dict[str, str] | None = None, body: str | None = None) -> dict[str, Any]:
    """An API Gateway REST (v1) proxy event that passed the authorizer."""
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": {"Content-Type": "application/json", "Host": "bench.local"},
        "multiValueHeaders": {},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in (query or {}).items()} or None,
        "pathParameters": path_params,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "requestId": str(uuid.uuid4()),
            "path": f"/api{path}",
            "stage": "api",
            "identity": {"sourceIp": "127.0.0.1"},
            "authorizer": {"principalId": tenant, "tenant": tenant, "key_id": "key_bench"},
        },
        "body": body,
        "isBase64Encoded": False,
    }
