"""Regressions for the 5xx that fuzzing and property tests found, one test per bug."""

from __future__ import annotations

import json

import pytest

from tests.unit.hardening.test_faults import records
from tests.unit.helpers import assert_problem, body

PATCH = "application/merge-patch+json"


@pytest.mark.parametrize("data", [
    {"": 1},
    {"": {"": [{"": None}]}},
    {"~": "tilde", "~~x": 2, "": 3, "x~": 4},
    {"a": {"": True}, "NULL": None, "S": "s"},
])
def test_object_keys_of_any_text_round_trip(tenant, data):
    """An empty key in ``data`` used to be dropped by the emulator, which then returned a malformed
    item: every read and every list of the tenant answered 500."""
    created = tenant.request("POST", "/items", {"name": "keys", "data": data})
    assert created.status_code == 201, created.body
    item_id = body(created)["id"]
    assert body(tenant.request("GET", f"/items/{item_id}"))["data"] == data
    listed = tenant.request("GET", "/items")
    assert listed.status_code == 200
    assert [i["data"] for i in body(listed)["items"]] == [data]


def test_empty_and_escaped_keys_patch_in_place(tenant):
    created = body(tenant.request("POST", "/items", {"name": "keys", "data": {"": 1, "~": 2, "keep": 3}}))
    patched = tenant.request("PATCH", f"/items/{created['id']}", {"data": {"": None, "~": 20, "~x": 30}},
                             content_type=PATCH)
    assert patched.status_code == 200, patched.body
    assert body(patched)["data"] == {"~": 20, "keep": 3, "~x": 30}
    merged = tenant.request("PATCH", f"/items/{created['id']}", {"data": {"": {"deep": {"": 1}}}}, content_type=PATCH)
    assert body(merged)["data"] == {"~": 20, "keep": 3, "~x": 30, "": {"deep": {"": 1}}}
    assert body(tenant.request("GET", f"/items/{created['id']}"))["data"] == body(merged)["data"]


@pytest.mark.parametrize("raw", [
    '{"name": "\\ud800"}',
    '{"name": "x", "data": {"\\udfff": 1}}',
    '{"name": "x", "tags": ["\\uDBFF"]}',
])
def test_unpaired_surrogate_escapes_are_400_and_write_nothing(tenant, raw):
    """``"\\ud800"`` parses to a string UTF-8 cannot encode: it used to reach DynamoDB and fail as a 500."""
    before = records(tenant)
    assert_problem(tenant.request("POST", "/items", raw=raw), 400, "bad-request")
    assert records(tenant) == before


def test_paired_surrogate_escapes_are_text(tenant):
    created = tenant.request("POST", "/items", raw='{"name": "\\ud83d\\ude00"}')
    assert created.status_code == 201
    assert json.loads(created.body)["name"] == "\U0001f600"
