"""A key never sees, changes, deletes, lists or learns of another tenant's data."""

from __future__ import annotations

from tests.unit.helpers import assert_problem, body


def test_other_tenant_sees_nothing(tenant, other_tenant):
    created = body(tenant.request("POST", "/items", {"id": "shared-id", "name": "mine"}))
    path = f"/items/{created['id']}"
    assert_problem(other_tenant.request("GET", path), 404, "not-found")
    assert_problem(other_tenant.request("PUT", path, {"name": "theirs"}), 404, "not-found")
    assert_problem(other_tenant.request("PATCH", path, {"name": "theirs"}), 404, "not-found")
    assert_problem(other_tenant.request("PATCH", path, {"data": {"a": {"b": 1}}}), 404, "not-found")
    assert_problem(other_tenant.request("DELETE", path), 404, "not-found")
    assert_problem(other_tenant.request("DELETE", path, headers={"If-Match": '"1"'}), 404, "not-found")
    assert body(other_tenant.request("GET", "/items")) == {"items": [], "next_cursor": None}
    assert body(tenant.request("GET", path)) == created


def test_same_id_in_two_tenants_is_two_items(tenant, other_tenant):
    assert tenant.request("POST", "/items", {"id": "same", "name": "one"}).status_code == 201
    assert other_tenant.request("POST", "/items", {"id": "same", "name": "two"}).status_code == 201
    assert body(tenant.request("GET", "/items/same"))["name"] == "one"
    assert body(other_tenant.request("GET", "/items/same"))["name"] == "two"


def test_cursor_of_one_tenant_is_rejected_for_another(tenant, other_tenant):
    for n in range(3):
        tenant.request("POST", "/items", {"id": f"i{n}", "name": "n"})
        other_tenant.request("POST", "/items", {"id": f"i{n}", "name": "n"})
    cursor = body(tenant.request("GET", "/items?limit=1"))["next_cursor"]
    assert_problem(other_tenant.request("GET", f"/items?limit=1&cursor={cursor}"), 400, "bad-request", ["/query/cursor"])


def test_idempotency_keys_are_per_tenant(tenant, other_tenant):
    headers = {"Idempotency-Key": "same-key"}
    first = tenant.request("POST", "/items", {"name": "n"}, headers=headers)
    second = other_tenant.request("POST", "/items", {"name": "n"}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert "Idempotent-Replayed" not in second.headers
    assert body(first)["id"] != body(second)["id"]
