"""The local gateway against the API definitions ``chalice package`` generates (local/gateway.py).

Over real HTTP, through the whole stack, in tests/integration/test_local_gateway.py; here the
gateway's own decisions, with the functions it would invoke recorded or scripted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from chalice.app import AuthRequest, AuthResponse
from werkzeug.test import Client

from infra import gateway_responses
from local.gateway import Gateway, policy_allows
from local.lambdas import FunctionError
from local.package import ROOT, Package, build

FIXTURES = Path(__file__).parent / "fixtures"
PORT = 18000
HOST = {"Host": f"127.0.0.1:{PORT}"}
ORIGIN = "http://127.0.0.1:18080"


@pytest.fixture(scope="module")
def project_package() -> Package:
    environment = {"STAGE": "local", "TABLE_NAME": "t", "BUCKET_NAME": "items-local-bucket", "QUEUE_NAME": "items-local-work",
                   "CORS_ALLOW_ORIGIN": ORIGIN}
    return build(environment, {"QUEUE_URL": "http://127.0.0.1:1/123456789012/items-local-work"},
                 ROOT / ".local" / "package").package


class Functions:
    """What the gateway invokes, by function: scripted answers, and a record of the events."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, function: str, event: dict[str, Any]) -> Any:
        self.calls.append((function, event))
        answer = self.answers[function]
        return answer(event) if callable(answer) else answer


def allow_all(event: dict[str, Any]) -> dict[str, Any]:
    request = AuthRequest(event["type"], event["authorizationToken"], event["methodArn"])
    return AuthResponse(routes=["*"], principal_id="alpha", context={"tenant": "alpha"}).to_dict(request)


def ok(_event: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": "{}"}


def expected(response_type: str, response: Any) -> tuple[int, dict[str, str], Any]:
    status, headers, body = gateway_responses.render(response_type, response.headers["x-amzn-RequestId"], ORIGIN)
    return status, headers, json.loads(body)


def assert_gateway_answer(response: Any, response_type: str) -> None:
    status, headers, body = expected(response_type, response)
    assert response.status_code == status
    assert {name: response.headers.get(name) for name in headers} == headers
    assert response.json == body


def test_an_x_api_key_requirement_is_refused_as_aws_refuses_it(tmp_path):
    """An authorizer named ``api_key`` becomes a usage-plan key requirement: no local key can pass."""
    package = build({"STAGE": "local"}, {}, tmp_path / "cache", root=FIXTURES / "api_key_app").package
    assert package.swagger["securityDefinitions"]["api_key"]["name"] == "x-api-key"
    functions = Functions({"api_handler": ok, "api_key": allow_all})
    client = Client(Gateway(package, functions, PORT, ORIGIN))
    for headers in ({"Authorization": "Bearer anything"}, {"x-api-key": "anything"}, {}):
        response = client.get("/things", headers={**HOST, **headers})
        assert_gateway_answer(response, "INVALID_API_KEY")
        assert response.status_code == 403
    assert functions.calls == []


def test_the_projects_authorizer_guards_every_route_but_health_and_openapi(project_package):
    functions = Functions({"api_handler": ok, "bearer_authorizer": allow_all})
    client = Client(Gateway(project_package, functions, PORT, ORIGIN))
    for path, methods in project_package.swagger["paths"].items():
        concrete = path.replace("{item_id}", "i1").replace("{attachment_id}", "a1").replace("{import_id}", "m1")
        for method in methods:
            if method == "options":
                continue
            response = client.open(concrete, method=method.upper(), headers=HOST)
            if path in ("/health", "/openapi.json"):
                assert response.status_code == 200, (method, path)
            else:
                assert_gateway_answer(response, "UNAUTHORIZED")
    assert {f for f, _ in functions.calls} == {"api_handler"}


def test_the_authorizers_answer_is_cached_per_token_for_its_ttl(project_package):
    now = [1000.0]
    functions = Functions({"api_handler": ok, "bearer_authorizer": allow_all})
    client = Client(Gateway(project_package, functions, PORT, ORIGIN, clock=lambda: now[0]))
    ttl = project_package.swagger["securityDefinitions"]["bearer_authorizer"]["x-amazon-apigateway-authorizer"][
        "authorizerResultTtlInSeconds"]
    token = {"Authorization": "Bearer key-1", **HOST}
    assert client.get("/items", headers=token).status_code == 200
    assert client.delete("/items/x", headers=token).status_code == 200  # another method and path: same policy
    now[0] += ttl - 1
    assert client.get("/items", headers=token).status_code == 200
    assert [f for f, _ in functions.calls].count("bearer_authorizer") == 1
    now[0] += 2
    assert client.get("/items", headers=token).status_code == 200
    assert [f for f, _ in functions.calls].count("bearer_authorizer") == 2
    assert client.get("/items", headers={"Authorization": "Bearer key-2", **HOST}).status_code == 200
    assert [f for f, _ in functions.calls].count("bearer_authorizer") == 3
    authorizer_event = next(e for f, e in functions.calls if f == "bearer_authorizer")
    assert authorizer_event["type"] == "TOKEN"
    assert authorizer_event["authorizationToken"] == "Bearer key-1"
    assert authorizer_event["methodArn"].endswith("/api/GET/items")
    proxied = next(e for f, e in functions.calls if f == "api_handler")
    assert proxied["requestContext"]["authorizer"] == {"principalId": "alpha", "tenant": "alpha"}
    assert proxied["requestContext"]["resourcePath"] == "/items"


def test_a_policy_without_this_route_is_access_denied(project_package):
    def no_routes(event: dict[str, Any]) -> dict[str, Any]:
        request = AuthRequest(event["type"], event["authorizationToken"], event["methodArn"])
        return AuthResponse(routes=[], principal_id="anonymous").to_dict(request)

    functions = Functions({"api_handler": ok, "bearer_authorizer": no_routes})
    response = Client(Gateway(project_package, functions, PORT, ORIGIN)).get(
        "/items", headers={"Authorization": "Bearer unknown", **HOST})
    assert_gateway_answer(response, "ACCESS_DENIED")
    assert [f for f, _ in functions.calls] == ["bearer_authorizer"]


def test_policy_evaluation_follows_iam():
    arn = "arn:aws:execute-api:us-east-1:123456789012:local/api/GET/items/abc"
    request = AuthRequest("TOKEN", "t", arn)
    assert policy_allows(AuthResponse(routes=["*"], principal_id="p").to_dict(request)["policyDocument"], arn)
    assert policy_allows(AuthResponse(routes=["/items/*"], principal_id="p").to_dict(request)["policyDocument"], arn)
    assert not policy_allows(AuthResponse(routes=["/imports"], principal_id="p").to_dict(request)["policyDocument"], arn)
    assert not policy_allows(AuthResponse(routes=[], principal_id="p").to_dict(request)["policyDocument"], arn)
    both = {"Statement": [{"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "*"},
                          {"Effect": "Deny", "Action": "execute-api:*", "Resource": [arn]}]}
    assert not policy_allows(both, arn)  # an explicit Deny wins


@pytest.mark.parametrize(
    ("authorizer", "response_type"),
    [
        (FunctionError("Exception", "Unauthorized"), "UNAUTHORIZED"),
        (FunctionError("AuthorizerUnavailable", "the key store is busy"), "AUTHORIZER_FAILURE"),
        (FunctionError("Sandbox.Timedout", "Task timed out after 15.00 seconds"), "AUTHORIZER_FAILURE"),
        ({"principalId": "p"}, "AUTHORIZER_CONFIGURATION_ERROR"),
    ],
)
def test_authorizer_failures_are_the_gateway_responses(project_package, authorizer, response_type):
    def run(_event: dict[str, Any]) -> Any:
        if isinstance(authorizer, Exception):
            raise authorizer
        return authorizer

    functions = Functions({"api_handler": ok, "bearer_authorizer": run})
    response = Client(Gateway(project_package, functions, PORT, ORIGIN)).get(
        "/items", headers={"Authorization": "Bearer k", **HOST})
    assert_gateway_answer(response, response_type)
    if response_type == "AUTHORIZER_FAILURE":
        assert response.status_code == 503
        assert response.headers["Retry-After"]


@pytest.mark.parametrize(
    "answer",
    [FunctionError("Sandbox.Timedout", "Task timed out after 15.00 seconds"), FunctionError("KeyError", "x"),
     {"body": "no status"}, {"statusCode": 200, "body": {"not": "a string"}}, None],
    ids=["timeout", "error", "no status", "body not text", "nothing"],
)
def test_a_failed_or_malformed_integration_is_the_default_5xx(project_package, answer):
    def run(_event: dict[str, Any]) -> Any:
        if isinstance(answer, Exception):
            raise answer
        return answer

    functions = Functions({"api_handler": run})
    response = Client(Gateway(project_package, functions, PORT, ORIGIN)).get("/health", headers=HOST)
    assert_gateway_answer(response, "DEFAULT_5XX")
    assert response.status_code >= 500


def test_binary_bodies_reach_the_function_base64_encoded(project_package):
    functions = Functions({"api_handler": ok, "bearer_authorizer": allow_all})
    client = Client(Gateway(project_package, functions, PORT, ORIGIN))
    client.post("/items", data=b"\x89PNG\x00\xff", headers={"Authorization": "Bearer k", "Content-Type": "image/png", **HOST})
    client.post("/items", data=b'{"name": "x"}', headers={"Authorization": "Bearer k", "Content-Type": "application/json", **HOST})
    events = [e for f, e in functions.calls if f == "api_handler"]
    assert (events[0]["isBase64Encoded"], events[0]["body"]) == (True, "iVBORwD/")
    assert (events[1]["isBase64Encoded"], events[1]["body"]) == (False, '{"name": "x"}')


def test_other_host_names_are_refused(project_package):
    functions = Functions({"api_handler": ok})
    client = Client(Gateway(project_package, functions, PORT, ORIGIN))
    for host in ("attacker.example", f"attacker.example:{PORT}", "127.0.0.1", f"127.0.0.1:{PORT + 1}", f"localhost.:{PORT}"):
        response = client.get("/health", headers={"Host": host})
        assert response.status_code == 403, host
        assert response.json["type"] == "/problems/forbidden"
    assert client.get("/health", headers={"Host": f"localhost:{PORT}"}).status_code == 200
    assert len(functions.calls) == 1


def test_path_parameters_are_decoded_per_segment(project_package):
    functions = Functions({"api_handler": ok, "bearer_authorizer": allow_all})
    client = Client(Gateway(project_package, functions, PORT, ORIGIN))
    headers = {"Authorization": "Bearer k", **HOST}
    assert client.get("/items/a%2Fb", headers=headers).status_code == 200
    assert client.get("/items/%C3%A9t%C3%A9/attachments", headers=headers).status_code == 200
    assert client.get("/items//attachments", headers=headers).status_code == 404  # an empty parameter matches nothing
    events = [e for f, e in functions.calls if f == "api_handler"]
    assert [(e["resource"], e["pathParameters"]) for e in events] == [
        ("/items/{item_id}", {"item_id": "a/b"}),
        ("/items/{item_id}/attachments", {"item_id": "été"}),
    ]
