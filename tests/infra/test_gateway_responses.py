"""API Gateway's own answers (infra/gateway_responses.py) and the API definition Chalice generates."""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

import pytest

from chalicelib.problems import PROBLEM_CONTENT_TYPE, PROBLEM_TYPES
from infra import gateway_responses

ORIGIN = "https://app.example.com"
# API.md "Conventions": what API Gateway itself answers, as problem documents.
CONTRACT = {
    "UNAUTHORIZED": (401, "unauthorized"),
    "ACCESS_DENIED": (403, "forbidden"),
    "MISSING_AUTHENTICATION_TOKEN": (404, "not-found"),
    "THROTTLED": (429, "rate-limited"),
    "AUTHORIZER_FAILURE": (503, "service-unavailable"),
    "AUTHORIZER_CONFIGURATION_ERROR": (503, "service-unavailable"),
}
PUBLIC_ROUTES = {("/health", "GET"), ("/openapi.json", "GET")}


@pytest.mark.parametrize(("response_type", "expected"), sorted(CONTRACT.items()))
def test_gateway_answers_are_the_contracts_problem_documents(response_type, expected):
    status, headers, body = gateway_responses.render(response_type, "req-1", ORIGIN)
    document = json.loads(body)
    assert (status, document["type"]) == (expected[0], f"/problems/{expected[1]}")
    assert document["status"] == status and document["title"] == PROBLEM_TYPES[expected[1]][1]
    assert document["request_id"] == "req-1" and document["detail"]
    assert headers["Content-Type"] == PROBLEM_CONTENT_TYPE
    assert headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Retry-After" in headers["Access-Control-Expose-Headers"].split(",")
    assert ("Retry-After" in headers) == (status in (429, 503))


def test_every_status_and_slug_agree():
    for response in gateway_responses.RESPONSES:
        assert PROBLEM_TYPES[response.slug][0] == response.status
        assert response.status < 500 or response.retry_after, response.response_type


def test_the_deploy_parameters_render_as_the_local_answer():
    parameters = gateway_responses.put_parameters(ORIGIN)
    assert {p["responseType"] for p in parameters} == set(gateway_responses.BY_TYPE)
    assert set(CONTRACT) | {"DEFAULT_4XX", "DEFAULT_5XX"} <= set(gateway_responses.BY_TYPE)
    for put in parameters:
        status, headers, body = gateway_responses.render(put["responseType"], "$context.requestId", ORIGIN)
        assert put["statusCode"] == str(status)
        assert put["responseParameters"] == {f"gatewayresponse.header.{k}": f"'{v}'" for k, v in headers.items()}
        template = put["responseTemplates"]["application/json"]
        assert json.loads(template) == json.loads(body)
        assert '"request_id": "$context.requestId"' in template  # API Gateway's variable, substituted per request
        assert gateway_responses.parameters_match(put, put)
        assert not gateway_responses.parameters_match({**put, "statusCode": "500"}, put)


def test_a_type_not_listed_answers_as_the_5xx_default():
    assert gateway_responses.render("SOMETHING_NEW", "r", ORIGIN)[0] == 503


# -- the API definition Chalice generates from app.py -------------------------------------------------

@pytest.fixture
def swagger(isolated_process, monkeypatch) -> dict[str, Any]:
    """The Swagger document Chalice's deployer and packager send to API Gateway for app.py."""
    from chalice.deploy.swagger import TemplatedSwaggerGenerator

    monkeypatch.delenv("CORS_ALLOW_ORIGIN", raising=False)
    monkeypatch.setenv("STAGE", "ci")
    sys.modules.pop("app", None)
    app = importlib.import_module("app").app
    return dict(TemplatedSwaggerGenerator().generate_swagger(app))


def test_the_bearer_authorizer_guards_every_protected_route(swagger):
    definitions = swagger["securityDefinitions"]
    assert "api_key" not in definitions, "Chalice turns a security entry named api_key into the x-api-key requirement"
    (name,) = definitions
    authorizer = definitions[name]
    assert authorizer["x-amazon-apigateway-authtype"] == "custom"
    assert authorizer["name"] == "Authorization"
    assert authorizer["x-amazon-apigateway-authorizer"]["type"] == "token"
    assert authorizer["x-amazon-apigateway-authorizer"]["authorizerResultTtlInSeconds"] == 60
    methods = [(path, method.upper(), operation) for path, operations in swagger["paths"].items()
               for method, operation in operations.items() if method != "options"]
    assert len(methods) > len(PUBLIC_ROUTES)
    for path, method, operation in methods:
        expected = None if (path, method) in PUBLIC_ROUTES else [{name: []}]
        assert operation.get("security") == expected, (path, method)
