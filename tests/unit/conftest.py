"""Unit tests: the Chalice test client against moto's in-process AWS mock.

One mock and one resources stack (built from infra/template.yaml, like every other environment)
serve the whole session; tests isolate themselves by using fresh tenants, which is exactly the
isolation the table's design provides.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from tests import moto_shims, moto_speedups
from tests.unit import iam_audit

os.environ.update(
    {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "TABLE_NAME": "items-test",
        "CURSOR_SECRETS": "unit-test-cursor-secret",
    }
)
for _name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
    os.environ.pop(_name, None)

# Every AWS call the application makes from here on is recorded and checked against the stage's
# IAM policy by test_iam_policy.py, which runs last.
iam_audit.install()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    iam_audit.order_last(items, "test_iam_policy.py")


def pytest_deselected(items: list[pytest.Item]) -> None:
    iam_audit.note_deselected(items)


@pytest.fixture(scope="session")
def aws_mock() -> Iterator[None]:
    import boto3
    from moto import mock_aws

    from chalicelib.store import aws
    from infra import stack

    # The session's table grows with every test; moto copies it whole per transaction action
    # (tests/moto_speedups.py says why this session, and only it, rolls back item by item).
    moto_speedups.item_level_transactions()
    # moto's Query omits LastEvaluatedKey when Limit is reached on the last item; DynamoDB does not.
    moto_shims.query_limit_like_dynamodb()
    moto_shims.query_reads_one_partition()  # the same answers, without sorting the whole table per query
    moto_shims.expression_size_like_dynamodb()  # and refuses expressions over 4 KB as DynamoDB does
    with mock_aws():
        aws.reset()
        outputs = stack.deploy(boto3.client("cloudformation"), "test")
        iam_audit.note_stack(outputs)
        os.environ.update({"BUCKET_NAME": outputs["BucketName"], "QUEUE_URL": outputs["WorkQueueUrl"]})
        yield
    aws.reset()


@pytest.fixture(scope="session")
def app_module(aws_mock: None) -> Any:
    import app

    return app


class _GatewayAnswers:
    """Chalice's test HTTP client, answering a failed authorizer as API Gateway does.

    API Gateway answers a Lambda authorizer that fails (raises) with its ``AUTHORIZER_FAILURE``
    gateway response, or ``UNAUTHORIZED`` when the failure's message is "Unauthorized"
    ("Supported gateway response types", API Gateway Developer Guide:
    https://docs.aws.amazon.com/apigateway/latest/developerguide/supported-gateway-response-types.html);
    the deploy step sets that response from infra/gateway_responses.py. Chalice's test client lets
    the authorizer's exception through instead, so this harness renders the same definition.
    """

    def __init__(self, http: Any) -> None:
        self._http = http

    def request(self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes | str = b"") -> Any:
        from chalice.test import HTTPResponse

        from chalicelib.auth.callers import Unauthorized
        from chalicelib.auth.gateway import AuthorizerUnavailable
        from infra import gateway_responses

        try:
            return self._http.request(method, path, headers=headers, body=body)
        except (AuthorizerUnavailable, Unauthorized) as exc:
            # A Lambda authorizer that fails with the message "Unauthorized" is API Gateway's
            # UNAUTHORIZED (401); any other failure is AUTHORIZER_FAILURE (same page as above).
            response_type = "UNAUTHORIZED" if isinstance(exc, Unauthorized) else "AUTHORIZER_FAILURE"
            origin = os.environ.get("CORS_ALLOW_ORIGIN", "").strip() or "*"
            status, answer, text = gateway_responses.render(response_type, secrets.token_hex(8), origin)
            if response_type == "AUTHORIZER_FAILURE":
                answer["x-amzn-ErrorType"] = "AuthorizerFailureException"
            return HTTPResponse(body=text if isinstance(text, bytes) else text.encode(), headers=answer, status_code=status)

    def __getattr__(self, method: str) -> Any:
        if method not in {"get", "post", "put", "patch", "options", "delete", "head"}:
            raise AttributeError(method)

        def call(path: str, headers: dict[str, str] | None = None, body: bytes | str = b"") -> Any:
            return self.request(method.upper(), path, headers=headers, body=body if body is not None else b"")

        return call


class _HarnessClient:
    """Chalice's test client (``lambda_``, ``events``) with ``http`` as ``_GatewayAnswers``."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.http = _GatewayAnswers(client.http)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


@pytest.fixture
def client(app_module: Any) -> Iterator[Any]:
    from chalice.test import Client

    with Client(app_module.app, stage_name="local") as test_client:
        yield _HarnessClient(test_client)


class Tenant:
    """A fresh tenant with one API key, and helpers to call the API as it."""

    def __init__(self, client: Any, name: str, key: str) -> None:
        self.client = client
        self.name = name
        self.key = key

    def headers(self, extra: dict[str, str] | None = None, content_type: str | None = "application/json") -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.key}"}
        if content_type:
            headers["Content-Type"] = content_type
        headers.update(extra or {})
        return headers

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                raw: str | bytes | None = None, content_type: str | None = "application/json") -> Any:
        import json

        payload = raw if raw is not None else (json.dumps(body) if body is not None else None)
        response = getattr(self.client.http, method.lower())(
            path, headers=self.headers(headers, content_type), body=payload
        )
        return response


def make_tenant(client: Any) -> Tenant:
    from chalicelib.auth import apikeys

    name = "t" + secrets.token_hex(6)
    _, key = apikeys.create(os.environ["TABLE_NAME"], name)
    return Tenant(client, name, key)


@pytest.fixture
def tenant(client: Any) -> Tenant:
    return make_tenant(client)


@pytest.fixture
def other_tenant(client: Any) -> Tenant:
    return make_tenant(client)


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The service's DynamoDB client answered by a botocore ``Stubber`` (no retry sleeps)."""
    import boto3
    from botocore.stub import Stubber

    from chalicelib.store import aws
    from chalicelib.store import transactions as dynamo_batch

    client = boto3.client("dynamodb", region_name="us-east-1")
    monkeypatch.setattr(aws, "dynamodb", lambda: client)
    monkeypatch.setattr(dynamo_batch.time, "sleep", lambda _seconds: None)
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()
