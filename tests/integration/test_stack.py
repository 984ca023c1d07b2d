"""The local stack as a user meets it: over real HTTP, on loopback."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

import pytest
import requests

from tests.localstack import ROOT, start_stack


def test_health_and_ready(local_stack):
    response = requests.get(f"{local_stack.api_url}/health", timeout=5)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.headers["X-Request-Id"]


def test_tenant_keys_from_environment(local_stack):
    alpha = local_stack.session("alpha")
    created = alpha.post(f"{local_stack.api_url}/items", json={"name": "over http"}, timeout=5)
    assert created.status_code == 201
    beta = local_stack.session("beta")
    assert beta.get(f"{local_stack.api_url}/items/{created.json()['id']}", timeout=5).status_code == 404


def test_everything_listens_on_loopback_only(local_stack):
    log = local_stack.log()
    assert "0.0.0.0" not in log
    assert "http://127.0.0.1:" in log


def test_cors_preflight_answers_the_front_end_origin(local_stack):
    origin = local_stack.ui_url.rstrip("/")
    response = requests.options(
        f"{local_stack.api_url}/items",
        headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type,idempotency-key"},
        timeout=5,
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == origin
    assert "idempotency-key" in response.headers["Access-Control-Allow-Headers"].lower()
    created = local_stack.session("alpha").post(f"{local_stack.api_url}/items", json={"name": "c"},
                                                headers={"Origin": origin}, timeout=5)
    assert created.headers["Access-Control-Allow-Origin"] == origin
    assert "ETag" in created.headers["Access-Control-Expose-Headers"]


def test_key_tool_against_the_local_stack(local_stack, tmp_path):
    env = {k: v for k, v in local_stack.env.items() if not k.startswith("AWS_")}

    def key_tool(*args: str) -> dict:
        done = subprocess.run([sys.executable, "-m", "tools.apikeys", "--local", *args],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True)
        return json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}

    def status_with(key: str) -> int:
        return requests.get(f"{local_stack.api_url}/items", headers={"Authorization": f"Bearer {key}"},
                            timeout=5).status_code

    used, unused = key_tool("create", "gamma"), key_tool("create", "gamma")
    assert status_with(used["key"]) == 200
    key_tool("revoke", "gamma", used["key_id"])
    key_tool("revoke", "gamma", unused["key_id"])
    # A key never presented before its revocation is refused at once: nothing was cached for it.
    assert status_with(unused["key"]) in (401, 403)
    # API Gateway keeps the authorizer's answer for a key it has seen for the TTL the package sets
    # (the gateway's unit tests move a clock past it); the revocation takes effect when it runs out.
    ttl = int(re.search(r"authorizer \S+ on \d+ methods, results cached (\d+) s", local_stack.log()).group(1))
    assert ttl > 0
    assert status_with(used["key"]) == 200


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stops_cleanly_within_five_seconds(tmp_path, sig):
    stack = start_stack(tmp_path)
    try:
        assert requests.get(f"{stack.api_url}/health", timeout=5).status_code == 200
        started = time.monotonic()
        stack.process.send_signal(sig)
        stack.process.wait(timeout=10)
        assert time.monotonic() - started < 5
        assert stack.process.returncode == 0
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{stack.api_url}/health", timeout=2)
        assert "stopped" in stack.log()
    finally:
        stack.stop()


def test_generated_key_is_printed_when_none_configured(tmp_path):
    stack = start_stack(tmp_path, extra_env={"LOCAL_API_KEYS": ""})
    try:
        printed = [line for line in stack.log().splitlines() if "API key" in line]
        assert printed
        key = printed[0].split()[3]
        response = requests.get(f"{stack.api_url}/items", headers={"Authorization": f"Bearer {key}"}, timeout=5)
        assert response.status_code == 200
    finally:
        stack.stop()
