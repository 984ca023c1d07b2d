"""GET /items: cursor paging, order, limits, expiry filtering."""

from __future__ import annotations

import base64
from datetime import UTC, timedelta

import pytest

from tests.unit.helpers import assert_problem, body


def make_items(tenant, count: int, prefix: str = "i") -> list[str]:
    ids = [f"{prefix}{n:03d}" for n in range(count)]
    for item_id in ids:
        assert tenant.request("POST", "/items", {"id": item_id, "name": item_id}).status_code == 201
    return ids


def walk(tenant, query: str = "") -> tuple[list[str], int]:
    seen: list[str] = []
    pages = 0
    url = f"/items?{query}"
    while True:
        page = body(tenant.request("GET", url))
        pages += 1
        seen += [item["id"] for item in page["items"]]
        if page["next_cursor"] is None:
            return seen, pages
        url = f"/items?{query}&cursor={page['next_cursor']}"


def test_empty_list(tenant):
    assert body(tenant.request("GET", "/items")) == {"items": [], "next_cursor": None}


def test_default_limit_is_20_and_walk_is_complete(tenant):
    ids = make_items(tenant, 45)
    first = body(tenant.request("GET", "/items"))
    assert len(first["items"]) == 20
    assert first["next_cursor"]
    seen, pages = walk(tenant)
    assert seen == ids
    assert pages == 3


def test_exact_multiple_has_no_trailing_empty_page(tenant):
    ids = make_items(tenant, 10)
    seen, pages = walk(tenant, "limit=5")
    assert seen == ids
    assert pages == 2


def test_descending_order(tenant):
    ids = make_items(tenant, 7)
    seen, _ = walk(tenant, "limit=3&order=desc")
    assert seen == list(reversed(ids))


def test_items_are_full_representations(tenant):
    tenant.request("POST", "/items", {"id": "a", "name": "n", "tags": ["t"], "data": {"x": 0.1}})
    [item] = body(tenant.request("GET", "/items"))["items"]
    assert item["data"] == {"x": 0.1}
    assert set(item) == {"id", "name", "description", "tags", "data", "expires_at", "version", "created_at", "updated_at"}


@pytest.mark.parametrize("query,name", [
    ("limit=0", "limit"), ("limit=101", "limit"), ("limit=abc", "limit"), ("limit=-1", "limit"), ("limit=1.5", "limit"),
    ("order=up", "order"), ("cursor=garbage", "cursor"), ("cursor=a.b", "cursor"),
])
def test_bad_query_parameters_are_400_with_pointer(tenant, query, name):
    assert_problem(tenant.request("GET", f"/items?{query}"), 400, "bad-request", [f"/query/{name}"])


def test_tampered_cursor_is_rejected(tenant):
    make_items(tenant, 3)
    cursor = body(tenant.request("GET", "/items?limit=1"))["next_cursor"]
    payload, tag = cursor.split(".")
    forged_payload = base64.urlsafe_b64encode(b'{"k":"i002"}').rstrip(b"=").decode()
    assert_problem(tenant.request("GET", f"/items?limit=1&cursor={forged_payload}.{tag}"), 400, "bad-request")


def test_cursor_is_bound_to_order(tenant):
    make_items(tenant, 3)
    cursor = body(tenant.request("GET", "/items?limit=1"))["next_cursor"]
    assert_problem(tenant.request("GET", f"/items?limit=1&order=desc&cursor={cursor}"), 400, "bad-request")


def test_cursor_survives_secret_rotation(tenant, monkeypatch):
    make_items(tenant, 3)
    cursor = body(tenant.request("GET", "/items?limit=1"))["next_cursor"]
    monkeypatch.setenv("CURSOR_SECRETS", "a-brand-new-secret,unit-test-cursor-secret")
    page = body(tenant.request("GET", f"/items?limit=1&cursor={cursor}"))
    assert [i["id"] for i in page["items"]] == ["i001"]
    monkeypatch.setenv("CURSOR_SECRETS", "a-brand-new-secret")
    assert_problem(tenant.request("GET", f"/items?limit=1&cursor={cursor}"), 400, "bad-request")


def test_expired_items_are_omitted_at_once(tenant, monkeypatch):
    from datetime import datetime

    soon = (datetime.now(UTC) + timedelta(seconds=30)).isoformat()
    tenant.request("POST", "/items", {"id": "a", "name": "n"})
    tenant.request("POST", "/items", {"id": "b", "name": "n", "expires_at": soon})
    tenant.request("POST", "/items", {"id": "c", "name": "n"})
    assert [i["id"] for i in body(tenant.request("GET", "/items"))["items"]] == ["a", "b", "c"]
    from chalicelib.util import clock

    real_now = clock.now
    monkeypatch.setattr(clock, "now", lambda: real_now() + timedelta(seconds=60))
    seen, _ = walk(tenant, "limit=1")
    assert seen == ["a", "c"]
