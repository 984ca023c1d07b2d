"""Small pure pieces: exact JSON, cursors, ULIDs, merge patch, the key tool."""

from __future__ import annotations

import json
import os
from decimal import Decimal

import pytest

from chalicelib.items.service import merge_patch
from chalicelib.store import cursor
from chalicelib.util import jsonutil, ulid


@pytest.mark.parametrize(("text", "expected"), [
    ("0.1", "0.1"), ("2", "2"), ("2.0", "2"), ("2.50", "2.5"), ("-0.0", "0"), ("1e100", "1E+100"),
    ("12345678901234567890", "12345678901234567890"), ("1.5e-7", "1.5E-7"), ("100", "100"),
    ("12345678901234567890123456789012345678", "12345678901234567890123456789012345678"),
    ("0.12345678901234567890123456789012345678", "0.12345678901234567890123456789012345678"),
])
def test_numbers_print_exactly(text, expected):
    value = jsonutil.loads(text)
    assert jsonutil.dumps(Decimal(value) if isinstance(value, int) else value) == expected


def test_dumps_matches_json_for_plain_values():
    value = {"s": "é\"\\\n", "l": [True, False, None, 1], "n": {}}
    assert json.loads(jsonutil.dumps(value)) == value
    with pytest.raises(TypeError):
        jsonutil.dumps({"x": object()})


def test_cursor_round_trip_and_binding():
    secrets = (b"s1", b"s0")
    token = cursor.encode("abc", tenant="t1", listing="items", order="asc", secret=b"s1")
    assert cursor.decode(token, tenant="t1", listing="items", order="asc", secrets=secrets) == "abc"
    assert cursor.decode(token, tenant="t1", listing="items", order="asc", secrets=(b"new", b"s1")) == "abc"
    for tenant, listing, order in [("t2", "items", "asc"), ("t1", "imports", "asc"), ("t1", "items", "desc")]:
        with pytest.raises(cursor.InvalidCursor):
            cursor.decode(token, tenant=tenant, listing=listing, order=order, secrets=secrets)
    assert "t1" not in token


def test_ulid_shape_and_order():
    first, second = ulid.new(1_000), ulid.new(2_000)
    assert len(first) == 26 and first < second
    assert ulid.new(0) .startswith("0000000000")


def test_merge_patch_rfc7396_examples():
    assert merge_patch({"a": "b"}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": "b"}, {"b": "c"}) == {"a": "b", "b": "c"}
    assert merge_patch({"a": "b"}, {"a": None}) == {}
    assert merge_patch({"a": [{"b": "c"}]}, {"a": [1]}) == {"a": [1]}
    assert merge_patch({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}) == {"a": {"b": "d"}}
    assert merge_patch({"e": None}, {"a": 1}) == {"e": None, "a": 1}
    assert merge_patch([1, 2], {"a": "b", "c": None}) == {"a": "b"}
    assert merge_patch({}, {"a": {"bb": {"ccc": None}}}) == {"a": {"bb": {}}}


def test_key_tool_creates_lists_and_revokes(aws_mock, capsys):
    from tools import apikeys as tool

    table = os.environ["TABLE_NAME"]
    assert tool.main(["--table", table, "create", "tool-tenant", "--label", "ci"]) == 0
    issued = json.loads(capsys.readouterr().out)
    assert issued["key"].startswith("isk_") and issued["tenant"] == "tool-tenant"
    assert tool.main(["--table", table, "list", "tool-tenant"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert listed == [{"key_id": issued["key_id"], "label": "ci", "created_at": listed[0]["created_at"]}]
    assert issued["key"] not in json.dumps(listed)
    assert tool.main(["--table", table, "revoke", "tool-tenant", issued["key_id"]]) == 0
    assert tool.main(["--table", table, "revoke", "tool-tenant", issued["key_id"]]) == 1
    assert tool.main(["--table", table, "create", "bad tenant"]) == 2
