"""API keys, the problem format for every failure, request ids, logs."""

from __future__ import annotations

import json
import os

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from tests.unit.conftest import make_tenant
from tests.unit.helpers import assert_problem, body

ROUTES = [("GET", "/items"), ("POST", "/items"), ("GET", "/items/x"), ("PUT", "/items/x"),
          ("PATCH", "/items/x"), ("DELETE", "/items/x")]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_missing_key_is_401(client, method, path):
    response = getattr(client.http, method.lower())(path, headers={"Content-Type": "application/json"}, body="{}")
    assert response.status_code == 401


@pytest.mark.parametrize("header", ["Bearer isk_not-a-real-key-at-all-0000", "Basic dXNlcjpwYXNz", "Bearer ", "isk_x",
                                    "Bearer short"])
def test_unknown_or_malformed_key_is_denied(client, header):
    response = client.http.get("/items", headers={"Authorization": header})
    assert response.status_code in (401, 403)


def test_public_routes_need_no_key(client):
    assert client.http.get("/health").status_code == 200
    assert client.http.get("/openapi.json").status_code == 200


def test_revoked_key_stops_working(client):
    from chalicelib.auth import apikeys

    tenant = make_tenant(client)
    assert tenant.request("GET", "/items").status_code == 200
    [record] = apikeys.list_keys(os.environ["TABLE_NAME"], tenant.name)
    assert apikeys.revoke(os.environ["TABLE_NAME"], tenant.name, record["key_id"])
    assert tenant.request("GET", "/items").status_code in (401, 403)
    assert not apikeys.revoke(os.environ["TABLE_NAME"], tenant.name, record["key_id"])


def test_keys_are_stored_only_as_hashes(client):
    from chalicelib.auth import apikeys
    from chalicelib.store import aws

    tenant = make_tenant(client)
    dump = json.dumps(aws.dynamodb().scan(TableName=os.environ["TABLE_NAME"])["Items"])
    assert tenant.key not in dump
    assert apikeys.hash_key(tenant.key) in dump


def test_key_rules(client):
    from chalicelib.auth import apikeys

    table = os.environ["TABLE_NAME"]
    with pytest.raises(apikeys.InvalidKeyRequest):
        apikeys.create(table, "bad tenant!")
    with pytest.raises(apikeys.InvalidKeyRequest):
        apikeys.create(table, "ok", key="too-short")
    apikeys.create(table, "ok", key="a-chosen-key-0123456789")
    with pytest.raises(apikeys.InvalidKeyRequest):
        apikeys.create(table, "other", key="a-chosen-key-0123456789")


def formatted_lines(caplog) -> list[dict]:
    """The JSON lines the service's log handler writes for the captured records."""
    from chalicelib.util import observability

    formatter = observability.logger().registered_formatter
    return [json.loads(formatter.format(record)) for record in caplog.records if record.name == "items-service"]


def test_request_log_line_has_the_fields_and_no_secrets(tenant, caplog):
    caplog.set_level("INFO")
    tenant.request("POST", "/items", {"name": "secret-name", "data": {"pin": "4321"}})
    lines = formatted_lines(caplog)
    [line] = [entry for entry in lines if entry.get("message") == "request"]
    assert line["tenant"] == tenant.name
    assert line["method"] == "POST"
    assert line["route"] == "/items"
    assert line["status"] == 201
    assert isinstance(line["latency_ms"], float)
    assert line["request_id"]
    text = json.dumps(lines)
    assert tenant.key not in text
    assert "secret-name" not in text
    assert "4321" not in text


def test_unexpected_exception_is_a_problem_with_request_id_and_logged_traceback(tenant, monkeypatch, caplog):
    from chalicelib.items import service as items

    def explode(*_args, **_kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(items.ItemService, "list", explode)
    response = tenant.request("GET", "/items")
    doc = assert_problem(response, 500, "internal-error")
    assert doc["request_id"] in doc["detail"]
    assert "boom" not in response.body.decode()
    [error] = [line for line in formatted_lines(caplog) if line["level"] == "ERROR"]
    assert "RuntimeError: boom" in error["exception"]
    assert error["request_id"] == doc["request_id"]


@pytest.mark.parametrize("error", [
    ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}, "GetItem"),
    ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "GetItem"),
    ReadTimeoutError(endpoint_url="http://dynamodb"),
])
def test_throttling_and_timeouts_are_503_with_retry_after(tenant, monkeypatch, error):
    from chalicelib.items import repository as item_repository

    def throttled(*_args, **_kwargs):
        raise error

    monkeypatch.setattr(item_repository.ItemRepository, "get", throttled)
    response = tenant.request("GET", "/items/anything")
    assert_problem(response, 503, "service-unavailable")
    assert int(response.headers["Retry-After"]) >= 1


def test_other_aws_errors_are_500_not_leaked(tenant, monkeypatch):
    from chalicelib.items import repository as item_repository

    def broken(*_args, **_kwargs):
        raise ClientError({"Error": {"Code": "ValidationException", "Message": "internal detail"}}, "GetItem")

    monkeypatch.setattr(item_repository.ItemRepository, "get", broken)
    response = tenant.request("GET", "/items/anything")
    assert_problem(response, 500, "internal-error")
    assert "internal detail" not in response.body.decode()


def test_method_not_allowed_is_a_problem(client):
    response = client.http.delete("/health")
    assert_problem(response, 405, "method-not-allowed")
    assert response.headers["Allow"] == "GET"


def test_every_application_response_has_a_request_id(tenant):
    responses = [
        tenant.request("GET", "/items"),
        tenant.request("POST", "/items", {"name": ""}),
        tenant.request("GET", "/items/missing"),
        tenant.client.http.get("/health"),
    ]
    ids = [r.headers["X-Request-Id"] for r in responses]
    assert all(ids) and len(set(ids)) == len(ids)


def test_security_headers(tenant, client):
    response = tenant.request("GET", "/items")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert client.http.get("/health").headers["X-Content-Type-Options"] == "nosniff"


def test_missing_table_setting_is_a_logged_500(tenant, monkeypatch):
    monkeypatch.setenv("TABLE_NAME", "")
    # The authorizer cannot run either; the stage is misconfigured, which is a bug, not a 4xx.
    response = tenant.request("GET", "/health")
    assert response.status_code == 200


def test_problem_shape_for_chalice_generated_415(tenant):
    response = tenant.request("PUT", "/items/x", raw="{}", content_type="text/csv")
    doc = assert_problem(response, 415, "unsupported-media-type")
    assert "text/csv" in doc["detail"]
    assert body(response)["status"] == 415
