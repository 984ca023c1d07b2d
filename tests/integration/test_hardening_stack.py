"""Abuse and secrecy over real HTTP: rate limits, unknown methods, what the logs hold."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.localstack import RunningStack, start_stack


@pytest.fixture(scope="module")
def limited_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """A second stack with rate limiting on: 2 requests per second, bursts of 4, per key."""
    tmp = Path(tmp_path_factory.mktemp("limited"))
    settings = {"RATE_LIMIT_RPS": "2", "RATE_LIMIT_BURST": "4", "LOCAL_STATE_FILE": str(tmp / "stack.json")}
    stack = start_stack(tmp, settings)
    yield stack
    stack.stop()


def test_rate_limit_per_key_in_the_local_stack(limited_stack):
    alpha, beta = limited_stack.session("alpha"), limited_stack.session("beta")
    url = f"{limited_stack.api_url}/items"
    statuses = [alpha.get(url, timeout=5).status_code for _ in range(8)]
    assert statuses[:4] == [200, 200, 200, 200]
    assert 429 in statuses[4:]
    refused = next(r for r in (alpha.get(url, timeout=5) for _ in range(3)) if r.status_code == 429)
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert refused.json()["type"] == "/problems/rate-limited"
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["Access-Control-Allow-Origin"] == limited_stack.ui_url.rstrip("/")
    # Another key of the same stack is not affected, and unauthenticated routes are not limited.
    assert [beta.get(url, timeout=5).status_code for _ in range(4)] == [200, 200, 200, 200]
    assert all(requests.get(f"{limited_stack.api_url}/health", timeout=5).status_code == 200 for _ in range(6))


@pytest.mark.parametrize("method", ["TRACE", "QUERY", "PROPFIND"])
def test_methods_the_gateway_does_not_route_are_never_5xx(local_stack, method):
    session = local_stack.session("alpha")
    known = session.request(method, f"{local_stack.api_url}/items", timeout=5)
    assert known.status_code == 405
    assert known.headers["Content-Type"] == "application/problem+json"
    assert known.headers["Allow"] == "GET, POST"
    assert known.json()["type"] == "/problems/method-not-allowed"
    unknown = session.request(method, f"{local_stack.api_url}/nowhere", timeout=5)
    assert unknown.status_code == 404  # API Gateway's MISSING_AUTHENTICATION_TOKEN, as infra/gateway_responses.py sets it
    assert unknown.headers["Content-Type"] == "application/problem+json"
    assert unknown.json()["type"] == "/problems/not-found"


def test_keys_never_reach_the_logs(local_stack):
    """Authenticated requests of every kind, good and bad: the log never holds a key."""
    api = local_stack.api_url
    alpha = local_stack.session("alpha")
    created = alpha.post(f"{api}/items", json={"name": "logged"}, headers={"Idempotency-Key": "log-1"}, timeout=5)
    item = created.json()["id"]
    alpha.get(f"{api}/items/{item}", timeout=5)
    alpha.patch(f"{api}/items/{item}", json={"data": {"a": 1}}, timeout=5)
    alpha.get(f"{api}/items?cursor=forged", timeout=5)
    alpha.post(f"{api}/items", data=b"{broken", headers={"Content-Type": "application/json"}, timeout=5)
    wrong_key = "wrong-key-" + "x" * 30
    requests.get(f"{api}/items", headers={"Authorization": f"Bearer {wrong_key}"}, timeout=5)
    alpha.delete(f"{api}/items/{item}", timeout=5)
    log = local_stack.log()
    assert '"tenant":"alpha"' in log  # the requests were logged...
    for key in (*local_stack.keys.values(), wrong_key):
        assert key not in log  # ...without any key, valid or not
