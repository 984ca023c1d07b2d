"""Concurrent writers against the real local stack: nothing is lost, nothing is doubled."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import requests


def run_parallel(count: int, call):
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(call, range(count)))


def test_same_if_match_only_one_wins(local_stack):
    api = local_stack.api_url
    session = local_stack.session("alpha")
    item = session.post(f"{api}/items", json={"name": "contended"}, timeout=10).json()

    def patch(n: int) -> int:
        response = requests.patch(
            f"{api}/items/{item['id']}", json={"name": f"writer {n}"},
            headers={**session.headers, "If-Match": '"1"'}, timeout=30,
        )
        return response.status_code, response.text

    outcomes = run_parallel(10, patch)
    assert sorted(status for status, _ in outcomes) == [200] + [412] * 9, outcomes
    assert session.get(f"{api}/items/{item['id']}", timeout=10).json()["version"] == 2


def test_blind_patches_of_different_keys_all_apply(local_stack):
    api = local_stack.api_url
    session = local_stack.session("alpha")
    item = session.post(f"{api}/items", json={"name": "shared"}, timeout=10).json()

    def patch(n: int) -> int:
        return requests.patch(f"{api}/items/{item['id']}", json={"data": {f"k{n}": n}},
                              headers=dict(session.headers), timeout=30).status_code

    assert run_parallel(10, patch) == [200] * 10
    final = session.get(f"{api}/items/{item['id']}", timeout=10).json()
    assert final["data"] == {f"k{n}": n for n in range(10)}
    assert final["version"] == 11


def test_blind_nested_patches_all_apply(local_stack):
    """Nested merges take the read-merge-write path; its version check retries lost races."""
    api = local_stack.api_url
    session = local_stack.session("alpha")
    item = session.post(f"{api}/items", json={"name": "nested", "data": {"group": {}}}, timeout=10).json()

    def patch(n: int) -> int:
        return requests.patch(f"{api}/items/{item['id']}", json={"data": {"group": {f"k{n}": n}}},
                              headers=dict(session.headers), timeout=60).status_code

    assert run_parallel(6, patch) == [200] * 6
    final = session.get(f"{api}/items/{item['id']}", timeout=10).json()
    assert final["data"]["group"] == {f"k{n}": n for n in range(6)}
    assert final["version"] == 7


def test_one_idempotency_key_from_eight_threads_creates_one_item(local_stack):
    api = local_stack.api_url
    session = local_stack.session("beta")
    before = session.get(f"{api}/items?limit=100", timeout=10).json()["items"]

    def post(_n: int) -> requests.Response:
        return requests.post(f"{api}/items", json={"name": "once"},
                             headers={**session.headers, "Idempotency-Key": "eight-threads"}, timeout=30)

    responses = run_parallel(8, post)
    assert {r.status_code for r in responses} <= {201, 409}
    created = [r for r in responses if r.status_code == 201]
    assert created
    assert len({r.json()["id"] for r in created}) == 1
    assert sum("Idempotent-Replayed" not in r.headers for r in created) == 1
    for conflict in (r for r in responses if r.status_code == 409):
        assert conflict.headers["Content-Type"] == "application/problem+json"
    after = session.get(f"{api}/items?limit=100", timeout=10).json()["items"]
    assert len(after) == len(before) + 1
