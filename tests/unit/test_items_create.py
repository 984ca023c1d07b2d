"""POST /items: field rules, exact numbers, ids, status codes, headers."""

from __future__ import annotations

import json
import re

import pytest

from tests.unit.helpers import assert_problem, body

ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


def test_create_minimal_item_gets_defaults_and_headers(tenant):
    response = tenant.request("POST", "/items", {"name": "  Receipt  "})
    assert response.status_code == 201
    item = body(response)
    assert ULID.match(item["id"])
    assert item["name"] == "Receipt"
    assert item["description"] is None
    assert item["tags"] == []
    assert item["data"] == {}
    assert item["expires_at"] is None
    assert item["version"] == 1
    assert item["created_at"] == item["updated_at"]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", item["created_at"])
    assert response.headers["Location"] == f"/items/{item['id']}"
    assert response.headers["ETag"] == '"1"'
    assert response.headers["X-Request-Id"]
    assert response.headers["Content-Type"] == "application/json"


def test_server_ids_sort_by_creation(tenant):
    ids = [body(tenant.request("POST", "/items", {"name": f"n{i}"}))["id"] for i in range(3)]
    assert ids == sorted(ids)


def test_numbers_round_trip_exactly(tenant):
    raw = '{"name": "n", "data": {"a": 0.1, "b": 2, "c": 12345678901234567890, "d": -0.5e-7, "e": [1.10, 3], "f": 1e100}}'
    created = tenant.request("POST", "/items", raw=raw)
    assert created.status_code == 201
    text = tenant.request("GET", f"/items/{body(created)['id']}").body.decode()
    assert '"a":0.1' in text
    assert '"b":2,' in text
    assert '"c":12345678901234567890' in text
    assert '"d":-5E-8' in text
    assert '"e":[1.1,3]' in text
    assert '"f":1E+100' in text


def test_tags_are_trimmed_and_deduplicated(tenant):
    item = body(tenant.request("POST", "/items", {"name": "n", "tags": [" a ", "b", "a", "b "]}))
    assert item["tags"] == ["a", "b"]


def test_client_chosen_id_and_duplicate_conflict(tenant):
    response = tenant.request("POST", "/items", {"id": "my-id_1", "name": "n"})
    assert response.status_code == 201
    assert body(response)["id"] == "my-id_1"
    assert_problem(tenant.request("POST", "/items", {"id": "my-id_1", "name": "other"}), 409, "conflict")
    assert body(tenant.request("GET", "/items/my-id_1"))["name"] == "n"


def test_expires_at_is_normalised_to_utc(tenant):
    item = body(tenant.request("POST", "/items", {"name": "n", "expires_at": "2099-06-01T12:00:00.123456+02:00"}))
    assert item["expires_at"] == "2099-06-01T10:00:00.123Z"


@pytest.mark.parametrize(
    ("payload", "pointers"),
    [
        ({"name": "   "}, ["/name"]),
        ({}, ["/name"]),
        ({"name": "x" * 201}, ["/name"]),
        ({"name": 5}, ["/name"]),
        ({"name": "n", "description": "x" * 4001}, ["/description"]),
        ({"name": "n", "description": 3}, ["/description"]),
        ({"name": "n", "tags": ["t"] * 21}, ["/tags"]),
        ({"name": "n", "tags": [""]}, ["/tags/0"]),
        ({"name": "n", "tags": ["x" * 51]}, ["/tags/0"]),
        ({"name": "n", "tags": "a"}, ["/tags"]),
        ({"name": "n", "data": []}, ["/data"]),
        ({"name": "n", "data": {"big": "x" * 16400}}, ["/data"]),
        ({"name": "n", "data": {"n": 123456789012345678901234567890123456789}}, ["/data/n"]),
        ({"name": "n", "data": {"deep": {"x": [1e200]}}}, ["/data/deep/x/0"]),
        ({"name": "n", "data": {"tiny": 1e-131}}, ["/data/tiny"]),
        ({"name": "n", "expires_at": "2000-01-01T00:00:00Z"}, ["/expires_at"]),
        ({"name": "n", "expires_at": "2099-01-01T00:00:00"}, ["/expires_at"]),
        ({"name": "n", "expires_at": "2099-01-01"}, ["/expires_at"]),
        ({"name": "n", "expires_at": 4102444800}, ["/expires_at"]),
        ({"name": "n", "id": "bad id"}, ["/id"]),
        ({"name": "n", "id": "x" * 65}, ["/id"]),
        ({"name": "n", "version": 1}, ["/version"]),
        ({"name": "n", "created_at": "2020-01-01T00:00:00Z"}, ["/created_at"]),
        ({"name": "n", "updated_at": "2020-01-01T00:00:00Z"}, ["/updated_at"]),
        ({"name": "n", "colour": "red"}, ["/colour"]),
        ([{"name": "n"}], [""]),
        ("just a string", [""]),
    ],
)
def test_invalid_bodies_are_422_with_pointers_and_write_nothing(tenant, payload, pointers):
    response = tenant.request("POST", "/items", payload)
    doc = assert_problem(response, 422, "validation-error", pointers)
    assert all(error["detail"] for error in doc["errors"])
    assert body(tenant.request("GET", "/items"))["items"] == []


def test_blank_name_says_so(tenant):
    doc = assert_problem(tenant.request("POST", "/items", {"name": " \t"}), 422, "validation-error", ["/name"])
    assert doc["errors"][0]["detail"] == "must not be blank"
    assert doc["detail"] == "1 field is invalid"


def test_length_messages_say_characters_or_entries(tenant):
    doc = assert_problem(tenant.request("POST", "/items", {"name": "n", "tags": ["x" * 51] + ["t"] * 21}), 422,
                         "validation-error")
    details = {e["pointer"]: e["detail"] for e in doc["errors"]}
    assert details["/tags"] == "must have at most 20 entries"
    doc = assert_problem(tenant.request("POST", "/items", {"name": "x" * 201, "tags": ["y" * 51]}), 422, "validation-error")
    details = {e["pointer"]: e["detail"] for e in doc["errors"]}
    assert details == {"/name": "must have at most 200 characters", "/tags/0": "must have at most 50 characters"}


def test_read_only_fields_are_named_as_such(tenant):
    doc = assert_problem(tenant.request("POST", "/items", {"name": "n", "version": 3}), 422, "validation-error")
    assert doc["errors"][0]["detail"] == "is read-only"


def test_deep_data_is_refused(tenant):
    deep: dict = {}
    node = deep
    for _ in range(16):
        node["x"] = {}
        node = node["x"]
    assert_problem(tenant.request("POST", "/items", {"name": "n", "data": deep}), 422, "validation-error", ["/data"])
    ok: dict = {}
    node = ok
    for _ in range(15):
        node["x"] = {}
        node = node["x"]
    assert tenant.request("POST", "/items", {"name": "n", "data": ok}).status_code == 201


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused(tenant, literal):
    # Not JSON at all (RFC 8259 has no such literals): malformed, like any other non-JSON text.
    raw = f'{{"name": "n", "data": {{"x": {literal}}}}}'
    assert_problem(tenant.request("POST", "/items", raw=raw), 400, "bad-request")


def test_data_limit_is_16_kib_compact(tenant):
    filler = "x" * (16 * 1024 - len('{"k":""}'))
    assert tenant.request("POST", "/items", {"name": "n", "data": {"k": filler}}).status_code == 201
    assert_problem(tenant.request("POST", "/items", {"name": "n", "data": {"k": filler + "x"}}), 422, "validation-error")


@pytest.mark.parametrize(
    "raw",
    ['{"name": ', "{'name': 'single quotes'}", "[" * 60000, '{"name": "n"} trailing', "\xff\xfe"],
)
def test_malformed_json_is_400(tenant, raw):
    assert_problem(tenant.request("POST", "/items", raw=raw), 400, "bad-request")


def test_empty_body_is_400(tenant):
    assert_problem(tenant.request("POST", "/items", raw=""), 400, "bad-request")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
def test_other_media_types_are_415(tenant, content_type):
    response = tenant.request("POST", "/items", raw='{"name": "n"}', content_type=content_type)
    assert_problem(response, 415, "unsupported-media-type")


def test_json_with_charset_is_accepted(tenant):
    response = tenant.request("POST", "/items", raw='{"name": "n"}', content_type="application/json; charset=utf-8")
    assert response.status_code == 201


def test_body_over_64_kib_is_413(tenant):
    raw = json.dumps({"name": "n", "description": "x" * (64 * 1024)})
    assert_problem(tenant.request("POST", "/items", raw=raw), 413, "payload-too-large")


def test_unicode_survives(tenant):
    item = body(tenant.request("POST", "/items", {"name": "Café 🧾", "data": {"ключ": "значение"}}))
    again = body(tenant.request("GET", f"/items/{item['id']}"))
    assert again["name"] == "Café 🧾"
    assert again["data"] == {"ключ": "значение"}
