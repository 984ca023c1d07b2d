"""The local stack as a user meets it: over real HTTP, on loopback."""

from __future__ import annotations

import requests


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
