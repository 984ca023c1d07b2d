"""Security review, one test per point (docs/THREAT_MODEL.md lists them)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from chalicelib.auth import apikeys
from chalicelib.config import secret_store
from chalicelib.store import cursor
from tests.faults import injected
from tests.unit.conftest import make_tenant
from tests.unit.hardening.test_faults import TABLE, _matcher
from tests.unit.helpers import assert_problem, body

ROOT = Path(__file__).resolve().parents[3]


def _whole_table() -> list[dict]:
    pages = boto3.client("dynamodb").get_paginator("scan").paginate(TableName=TABLE)
    return [item for page in pages for item in page["Items"]]


# -- API keys -------------------------------------------------------------------------------------

def test_keys_are_stored_only_as_hashes(aws_mock):
    key_id, key = apikeys.create(TABLE, "hashes-only", label="test")
    stored = json.dumps(_whole_table())
    assert key not in stored
    digest = hashlib.sha256(key.encode()).hexdigest()
    assert f"KEY#{digest}" in stored
    assert apikeys.authenticate(key, TABLE).key_id == key_id
    listed = apikeys.list_keys(TABLE, "hashes-only")
    assert [k["key_id"] for k in listed] == [key_id]
    assert key not in json.dumps(listed) and digest not in json.dumps(listed)


def test_key_check_compares_in_constant_time(aws_mock, monkeypatch):
    _, key = apikeys.create(TABLE, "constant-time")
    compared = []
    real = apikeys.hmac.compare_digest

    def spy(a, b):
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(apikeys.hmac, "compare_digest", spy)
    assert apikeys.authenticate(key, TABLE) is not None
    digest = hashlib.sha256(key.encode()).hexdigest()
    assert compared == [(digest, digest)]


def test_cursor_check_compares_in_constant_time(monkeypatch):
    compared = []
    real = cursor.hmac.compare_digest
    monkeypatch.setattr(cursor.hmac, "compare_digest", lambda a, b: compared.append(1) or real(a, b))
    token = cursor.encode("k", tenant="t", listing="items", order="asc", secret=b"s")
    assert cursor.decode(token, tenant="t", listing="items", order="asc", secrets=(b"s",)) == "k"
    assert compared


def test_keys_never_reach_the_logs(client, faults, capsys, caplog, rate_limited):
    """Every path a request with a key can take — success, client errors, a throttled authorizer,
    a rate limit, an internal error — and not one log line holds the key."""
    caplog.set_level("DEBUG")
    tenant = make_tenant(client)
    wrong = "wrong-" + "k" * 30
    tenant.request("POST", "/items", {"id": "x", "name": "n"}, headers={"Idempotency-Key": "i"})
    tenant.request("GET", "/items/x")
    tenant.request("GET", "/items?cursor=not-a-cursor")
    tenant.request("POST", "/items", {"name": ""})
    tenant.request("POST", "/items", raw="{")
    client.http.get("/items", headers={"Authorization": f"Bearer {wrong}"})
    client.http.get("/items", headers={"Authorization": tenant.key})  # no scheme
    faults.add("GetItem", "throttle", times=4, when=_matcher("KEY#"))
    tenant.request("GET", "/items")
    faults.clear()
    faults.add("GetItem", "denied", when=_matcher("ITEM#"))
    assert tenant.request("GET", "/items/x").status_code == 500
    faults.clear()
    rate_limited(0.01, 1)
    tenant.request("GET", "/items")
    assert tenant.request("GET", "/items").status_code == 429
    from chalicelib.util import observability

    captured = capsys.readouterr()
    formatter = observability.logger().registered_formatter
    records = [formatter.format(r) + json.dumps(r.__dict__, default=str) for r in caplog.records]
    logged = captured.out + captured.err + "\n".join(records)
    assert '"status":500' in logged and '"status":429' in logged  # the log saw all of it
    for secret in (tenant.key, wrong):
        assert secret not in logged


# -- cursor secrets -------------------------------------------------------------------------------

@pytest.fixture
def ssm_secrets(aws_mock, monkeypatch):
    """Cursor secrets from an SSM SecureString; returns a setter for the parameter's value."""
    from chalicelib.store import aws

    name = "/items/test/cursor-secrets"
    ssm = boto3.client("ssm")
    monkeypatch.delenv("CURSOR_SECRETS", raising=False)
    monkeypatch.setenv("CURSOR_SECRETS_PARAMETER", name)
    aws.reset()
    secret_store.forget()

    def put(value: str) -> None:
        ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
        secret_store.forget()  # as if CACHE_SECONDS had passed

    yield put
    secret_store.forget()


def _two_items(tenant) -> None:
    for item_id in ("a", "b"):
        assert tenant.request("POST", "/items", {"id": item_id, "name": item_id}).status_code == 201


def test_cursor_secrets_come_from_ssm_lazily_and_are_cached(client, ssm_secrets, monkeypatch):
    from chalicelib.store import aws

    ssm_secrets("first-secret")
    tenant = make_tenant(client)
    _two_items(tenant)
    with injected(aws.ssm()) as ssm_calls:
        assert tenant.request("GET", "/items/a").status_code == 200
        assert ssm_calls.calls == []  # only listings need the secret
        page = body(tenant.request("GET", "/items?limit=1"))
        assert [op for op, _ in ssm_calls.calls] == ["GetParameter"]
        assert ssm_calls.calls[0][1]["WithDecryption"] is True
        second = tenant.request("GET", f"/items?limit=1&cursor={page['next_cursor']}")
        assert [i["id"] for i in body(second)["items"]] == ["b"]
        assert len(ssm_calls.calls) == 1  # cached


def test_rotation_keeps_outstanding_cursors(client, ssm_secrets):
    tenant = make_tenant(client)
    _two_items(tenant)
    ssm_secrets("old-secret")
    minted_with_old = body(tenant.request("GET", "/items?limit=1"))["next_cursor"]

    def second_page(token: str):
        return tenant.request("GET", f"/items?limit=1&cursor={token}")

    ssm_secrets("old-secret,new-secret")  # 1. the new secret verifies everywhere
    assert second_page(minted_with_old).status_code == 200
    ssm_secrets("new-secret,old-secret")  # 2. the new secret signs
    minted_with_new = body(tenant.request("GET", "/items?limit=1"))["next_cursor"]
    assert cursor.decode(minted_with_new, tenant=tenant.name, listing="items", order="asc",
                         secrets=(b"new-secret",)) == "a"
    assert second_page(minted_with_old).status_code == 200
    assert second_page(minted_with_new).status_code == 200
    ssm_secrets("new-secret")  # 3. the old secret is retired
    assert_problem(second_page(minted_with_old), 400, "bad-request", ["/query/cursor"])
    assert second_page(minted_with_new).status_code == 200


def test_ssm_outage_keeps_the_cached_secrets(client, ssm_secrets, monkeypatch, no_backoff):
    from chalicelib.store import aws

    ssm_secrets("cached-secret")
    tenant = make_tenant(client)
    _two_items(tenant)
    assert tenant.request("GET", "/items").status_code == 200
    monkeypatch.setattr(secret_store, "CACHE_SECONDS", 0.0)
    with injected(aws.ssm()) as outage:
        outage.add("GetParameter", "throttle")
        assert tenant.request("GET", "/items").status_code == 200
        secret_store.forget()  # nothing cached: the listing cannot be signed, and says so
        assert_problem(tenant.request("GET", "/items"), 503, "service-unavailable")


def test_prod_refuses_inline_cursor_secrets():
    from chalicelib.config.settings import ConfigurationError, get_settings

    inline = get_settings()
    with pytest.raises(ConfigurationError, match="CURSOR_SECRETS_PARAMETER"):
        _ = type(inline)(**{**inline.__dict__, "stage": "prod"}).cursor_secrets
    assert inline.cursor_secrets == (b"unit-test-cursor-secret",)


# -- response headers -----------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "path", "payload", "headers", "status"), [
    ("POST", "/items", {"id": "h", "name": "n"}, {}, 201),
    ("GET", "/items/h", None, {}, 200),
    ("GET", "/items/h", None, {"If-None-Match": '"1"'}, 304),
    ("GET", "/items", None, {}, 200),
    ("GET", "/items?limit=0", None, {}, 400),
    ("GET", "/items/missing", None, {}, 404),
    ("PUT", "/items/h", {"name": "n"}, {"If-Match": '"9"'}, 412),
    ("POST", "/items", None, {"Content-Type": "text/plain"}, 415),
    ("POST", "/items", {"name": ""}, {}, 422),
    ("PATCH", "/items/h", {"name": "p"}, {}, 200),
    ("DELETE", "/items/h", None, {}, 204),
])
def test_authenticated_responses_are_not_sniffed_or_stored(client, method, path, payload, headers, status):
    tenant = make_tenant(client)
    if path != "/items" or method != "POST":
        tenant.request("POST", "/items", {"id": "h", "name": "n"})
    response = tenant.request(method, path, payload, headers=headers)
    assert response.status_code == status, response.body
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"


def test_503_and_429_responses_carry_the_headers_too(client, faults, rate_limited):
    tenant = make_tenant(client)
    faults.add("Query", "throttle")
    unavailable = tenant.request("GET", "/items")
    assert unavailable.status_code == 503
    faults.clear()
    rate_limited(0.01, 1)
    tenant.request("GET", "/items")
    limited = tenant.request("GET", "/items")
    assert limited.status_code == 429
    for response in (unavailable, limited):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store"


def test_public_responses_are_not_sniffed(client):
    for path in ("/health", "/openapi.json"):
        assert client.http.get(path).headers["X-Content-Type-Options"] == "nosniff"


# -- CORS -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("stage", "origin", "allowed"), [
    ("prod", "", None),
    ("prod", "*", None),
    ("prod", " * ", None),
    ("prod", "https://items.example.com", "https://items.example.com"),
    ("dev", "", "*"),
    ("dev", "*", "*"),
    ("local", "http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("dev", "https://a.example.com,https://b.example.com", None),
    ("dev", "https://items.example.com/path", None),
    ("dev", "javascript:alert(1)", None),
])
def test_cors_origin_per_stage(stage, origin, allowed):
    from chalicelib.config import cors
    from chalicelib.config.settings import ConfigurationError

    environ = {"STAGE": stage, "CORS_ALLOW_ORIGIN": origin}
    if allowed is None:
        with pytest.raises(ConfigurationError):
            cors.allowed_origin(environ)
    else:
        assert cors.allowed_origin(environ) == allowed


def _import_app(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("STAGE", "CORS_ALLOW_ORIGIN")}
    return subprocess.run([sys.executable, "-c", "import app"], check=False, cwd=ROOT, env={**clean, **env},
                          capture_output=True, text=True, timeout=60)


def test_prod_function_refuses_to_start_with_any_origin():
    refused = _import_app({"STAGE": "prod", "CORS_ALLOW_ORIGIN": "*"})
    assert refused.returncode != 0
    assert "CORS_ALLOW_ORIGIN" in refused.stderr
    assert _import_app({"STAGE": "prod", "CORS_ALLOW_ORIGIN": "https://items.example.com"}).returncode == 0
    assert _import_app({"STAGE": "dev"}).returncode == 0


def test_prod_deploy_refuses_any_origin():
    """``chalice deploy --stage prod`` imports the app with the stage's environment: it fails unless
    the deploy step exports the front end's origin."""
    script = (
        "import os, sys\n"
        "from chalice.cli.factory import CLIFactory\n"
        "factory = CLIFactory(project_dir=sys.argv[1], environ=os.environ)  # as the chalice CLI builds it\n"
        "factory.create_config_obj(chalice_stage_name='prod').chalice_app\n"
    )
    clean = {k: v for k, v in os.environ.items() if k not in ("STAGE", "CORS_ALLOW_ORIGIN")}
    refused = subprocess.run([sys.executable, "-c", script, str(ROOT)], check=False, cwd=ROOT, env=clean,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0
    assert "CORS_ALLOW_ORIGIN" in refused.stderr
    exported = subprocess.run([sys.executable, "-c", script, str(ROOT)], check=False, cwd=ROOT,
                              env={**clean, "CORS_ALLOW_ORIGIN": "https://items.example.com"},
                              capture_output=True, text=True, timeout=60)
    assert exported.returncode == 0, exported.stderr


def test_a_parameter_without_secrets_is_a_configuration_error(client, ssm_secrets):
    ssm_secrets(" , ")
    tenant = make_tenant(client)
    assert_problem(tenant.request("GET", "/items"), 500, "internal-error")


def test_a_throttled_key_store_answers_the_authorizer_failure_response(client, faults):
    """503 with Retry-After and a problem document, as API Gateway's AUTHORIZER_FAILURE (never a 500)."""
    from infra import gateway_responses

    tenant = make_tenant(client)
    faults.add("GetItem", "throttle", times=10, when=_matcher("KEY#"))
    response = tenant.request("GET", "/items")
    status, headers, body = gateway_responses.render("AUTHORIZER_FAILURE", "x", "*")
    assert response.status_code == status == 503
    assert response.headers["Retry-After"]
    assert {k: v for k, v in response.headers.items() if k != "x-amzn-ErrorType"} == headers
    assert {**response.json_body, "request_id": "x"} == json.loads(body)
