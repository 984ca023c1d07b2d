"""GET, PUT, PATCH, DELETE of one item: conditional requests, merge patch, expiry."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.unit.helpers import assert_problem, body


def future(seconds: float = 3600) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


@pytest.fixture
def item(tenant):
    return body(tenant.request("POST", "/items", {
        "name": "Receipt", "description": "lunch", "tags": ["travel"],
        "data": {"amount": 12.5, "nested": {"a": 1, "b": {"c": 2}}, "keep": True},
    }))


def test_get_returns_etag_and_if_none_match_gives_304(tenant, item):
    response = tenant.request("GET", f"/items/{item['id']}")
    assert response.status_code == 200
    assert response.headers["ETag"] == '"1"'
    assert body(response) == item
    not_modified = tenant.request("GET", f"/items/{item['id']}", headers={"If-None-Match": '"1"'})
    assert not_modified.status_code == 304
    assert not_modified.body in (b"", "", None)
    assert not_modified.headers["ETag"] == '"1"'
    for other in ('"2"', 'W/"2", "3"'):
        assert tenant.request("GET", f"/items/{item['id']}", headers={"If-None-Match": other}).status_code == 200
    assert tenant.request("GET", f"/items/{item['id']}", headers={"If-None-Match": 'W/"1"'}).status_code == 304


@pytest.mark.parametrize("item_id", ["nope", "x" * 65, "bad%20id", "a.b"])
def test_unknown_or_impossible_ids_are_404(tenant, item_id):
    assert_problem(tenant.request("GET", f"/items/{item_id}"), 404, "not-found")


def test_put_replaces_everything_and_resets_omitted_fields(tenant, item):
    response = tenant.request("PUT", f"/items/{item['id']}", {"name": "New"})
    assert response.status_code == 200
    replaced = body(response)
    assert replaced["name"] == "New"
    assert replaced["description"] is None
    assert replaced["tags"] == []
    assert replaced["data"] == {}
    assert replaced["version"] == 2
    assert replaced["created_at"] == item["created_at"]
    assert replaced["updated_at"] >= item["updated_at"]
    assert response.headers["ETag"] == '"2"'
    assert body(tenant.request("GET", f"/items/{item['id']}")) == replaced


def test_put_does_not_create(tenant):
    assert_problem(tenant.request("PUT", "/items/never-made", {"name": "n"}), 404, "not-found")
    assert_problem(tenant.request("GET", "/items/never-made"), 404, "not-found")


@pytest.mark.parametrize("payload,pointer", [({"name": ""}, "/name"), ({"name": "n", "id": "x"}, "/id"),
                                              ({"name": "n", "version": 1}, "/version")])
def test_put_validates_like_create(tenant, item, payload, pointer):
    assert_problem(tenant.request("PUT", f"/items/{item['id']}", payload), 422, "validation-error", [pointer])
    assert body(tenant.request("GET", f"/items/{item['id']}"))["version"] == 1


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_if_match_mismatch_is_412_and_changes_nothing(tenant, item, method):
    payload = {"name": "changed"} if method != "DELETE" else None
    response = tenant.request(method, f"/items/{item['id']}", payload, headers={"If-Match": '"7"'})
    assert_problem(response, 412, "precondition-failed")
    assert body(tenant.request("GET", f"/items/{item['id']}")) == item


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("if_match", ['"1"', "*", '"5", "1"'])
def test_if_match_that_matches_applies(tenant, item, method, if_match):
    payload = {"name": "changed"} if method != "DELETE" else None
    response = tenant.request(method, f"/items/{item['id']}", payload, headers={"If-Match": if_match})
    assert response.status_code == (204 if method == "DELETE" else 200)


def test_weak_if_match_never_matches(tenant, item):
    response = tenant.request("PATCH", f"/items/{item['id']}", {"name": "x"}, headers={"If-Match": 'W/"1"'})
    assert_problem(response, 412, "precondition-failed")


@pytest.mark.parametrize("bad", ["1", "abc", '"1', '"1",,x'])
def test_malformed_if_match_is_400(tenant, item, bad):
    response = tenant.request("PATCH", f"/items/{item['id']}", {"name": "x"}, headers={"If-Match": bad})
    assert_problem(response, 400, "bad-request")


def test_if_match_on_missing_item_is_404(tenant):
    assert_problem(tenant.request("DELETE", "/items/ghost", headers={"If-Match": '"1"'}), 404, "not-found")


def test_patch_merges_top_level_and_data_keys(tenant, item):
    response = tenant.request("PATCH", f"/items/{item['id']}",
                              {"description": None, "data": {"amount": 13, "keep": None, "new": [1, 2]}},
                              content_type="application/merge-patch+json")
    assert response.status_code == 200
    patched = body(response)
    assert patched["description"] is None
    assert patched["name"] == "Receipt"
    assert patched["tags"] == ["travel"]
    assert patched["data"] == {"amount": 13, "nested": {"a": 1, "b": {"c": 2}}, "new": [1, 2]}
    assert patched["version"] == 2
    assert response.headers["ETag"] == '"2"'
    assert body(tenant.request("GET", f"/items/{item['id']}")) == patched


def test_patch_merges_nested_objects_recursively(tenant, item):
    patched = body(tenant.request("PATCH", f"/items/{item['id']}",
                                  {"data": {"nested": {"b": {"d": 3, "c": None}, "a": None}}}))
    assert patched["data"]["nested"] == {"b": {"d": 3}}
    assert patched["data"]["amount"] == 12.5
    assert patched["version"] == 2


def test_patch_nulls_reset_optional_fields(tenant, item):
    patched = body(tenant.request("PATCH", f"/items/{item['id']}",
                                  {"tags": None, "data": None, "expires_at": None, "description": None}))
    assert (patched["tags"], patched["data"], patched["expires_at"], patched["description"]) == ([], {}, None, None)


def test_patch_can_set_and_clear_expiry(tenant, item):
    patched = body(tenant.request("PATCH", f"/items/{item['id']}", {"expires_at": future()}))
    assert patched["expires_at"].endswith("Z")
    cleared = body(tenant.request("PATCH", f"/items/{item['id']}", {"expires_at": None}))
    assert cleared["expires_at"] is None


@pytest.mark.parametrize(
    "patch,pointer",
    [
        ({"name": None}, "/name"),
        ({"name": "  "}, "/name"),
        ({"id": "x"}, "/id"),
        ({"version": 9}, "/version"),
        ({"unknown": 1}, "/unknown"),
        ({"tags": ["x" * 51]}, "/tags/0"),
        ({"data": {"n": 10**130}}, "/data/n"),  # NaN/Infinity are not JSON: 400, see test_hostile_input
        ({"expires_at": "2001-01-01T00:00:00Z"}, "/expires_at"),
    ],
)
def test_patch_refuses_invalid_results_and_changes_nothing(tenant, item, patch, pointer):
    raw = json.dumps(patch)
    assert_problem(tenant.request("PATCH", f"/items/{item['id']}", raw=raw), 422, "validation-error", [pointer])
    assert body(tenant.request("GET", f"/items/{item['id']}")) == item


def test_patch_body_must_be_an_object(tenant, item):
    assert_problem(tenant.request("PATCH", f"/items/{item['id']}", [1]), 422, "validation-error", [""])


def test_patch_that_would_exceed_16_kib_is_refused(tenant, item):
    half = "x" * 9000
    assert tenant.request("PATCH", f"/items/{item['id']}", {"data": {"one": half}}).status_code == 200
    assert_problem(tenant.request("PATCH", f"/items/{item['id']}", {"data": {"two": half}}), 422, "validation-error", ["/data"])
    # Replacing the big value keeps the size within bounds even though the bound was pessimistic.
    replaced = tenant.request("PATCH", f"/items/{item['id']}", {"data": {"one": half[:-10], "two": "small"}})
    assert replaced.status_code == 200
    assert body(replaced)["data"]["two"] == "small"


def test_patch_growth_fallback_many_times(tenant, item):
    value = "y" * 3000
    for round_ in range(12):
        response = tenant.request("PATCH", f"/items/{item['id']}", {"data": {"k": value + str(round_)}})
        assert response.status_code == 200, response.body
    assert body(response)["version"] == 13


def test_patch_too_deep_is_refused(tenant, item):
    deep: dict = {}
    node = deep
    for _ in range(16):
        node["x"] = {}
        node = node["x"]
    response = tenant.request("PATCH", f"/items/{item['id']}", {"data": {"flat": [deep]}})
    assert_problem(response, 422, "validation-error", ["/data/flat"])
    nested = tenant.request("PATCH", f"/items/{item['id']}", {"data": {"nested": deep}})
    assert_problem(nested, 422, "validation-error", ["/data"])


@pytest.mark.parametrize("content_type", ["text/plain", "application/json-patch+json"])
def test_patch_media_types(tenant, item, content_type):
    response = tenant.request("PATCH", f"/items/{item['id']}", raw='{"name": "x"}', content_type=content_type)
    assert_problem(response, 415, "unsupported-media-type")


def test_patch_unknown_item_is_404_on_both_paths(tenant):
    assert_problem(tenant.request("PATCH", "/items/ghost", {"name": "x"}), 404, "not-found")
    assert_problem(tenant.request("PATCH", "/items/ghost", {"data": {"a": {"b": 1}}}), 404, "not-found")


def test_patch_fallback_respects_if_match(tenant, item):
    response = tenant.request("PATCH", f"/items/{item['id']}", {"data": {"nested": {"z": 1}}}, headers={"If-Match": '"3"'})
    assert_problem(response, 412, "precondition-failed")
    ok = tenant.request("PATCH", f"/items/{item['id']}", {"data": {"nested": {"z": 1}}}, headers={"If-Match": '"1"'})
    assert ok.status_code == 200
    assert body(ok)["data"]["nested"]["z"] == 1


def test_delete_then_gone(tenant, item):
    response = tenant.request("DELETE", f"/items/{item['id']}")
    assert response.status_code == 204
    assert not response.body
    assert_problem(tenant.request("GET", f"/items/{item['id']}"), 404, "not-found")
    assert_problem(tenant.request("DELETE", f"/items/{item['id']}"), 404, "not-found")


def test_expired_item_is_gone_everywhere(tenant, monkeypatch):
    created = body(tenant.request("POST", "/items", {"id": "short-lived", "name": "n", "expires_at": future(60)}))
    from chalicelib.util import clock

    real_now = clock.now
    monkeypatch.setattr(clock, "now", lambda: real_now() + timedelta(seconds=120))
    assert_problem(tenant.request("GET", "/items/short-lived"), 404, "not-found")
    assert body(tenant.request("GET", "/items"))["items"] == []
    assert_problem(tenant.request("PUT", "/items/short-lived", {"name": "x"}), 404, "not-found")
    assert_problem(tenant.request("PATCH", "/items/short-lived", {"name": "x"}), 404, "not-found")
    assert_problem(tenant.request("PATCH", "/items/short-lived", {"data": {"a": {"b": 1}}}), 404, "not-found")
    assert_problem(tenant.request("DELETE", "/items/short-lived"), 404, "not-found")
    # Its id is free again: it does not exist.
    recreated = tenant.request("POST", "/items", {"id": "short-lived", "name": "again"})
    assert recreated.status_code == 201
    assert body(recreated)["version"] == 1
    assert created["id"] == "short-lived"


def test_every_write_counts_a_version(tenant, item):
    path = f"/items/{item['id']}"
    tenant.request("PATCH", path, {"name": "a"})
    tenant.request("PUT", path, {"name": "b"})
    tenant.request("PATCH", path, {"data": {"x": {"y": 1}}})
    tenant.request("PATCH", path, {})
    assert body(tenant.request("GET", path))["version"] == 5
