"""Properties over generated inputs (hypothesis, derandomized: the same examples every run; bounded:
the profile's count of examples, tests/conftest.py: 30, or 100 with HYPOTHESIS_PROFILE=thorough).

- Every ``data`` object the validator accepts round-trips through the API and DynamoDB exactly:
  same keys, same strings, integers as integers, every number with its exact value.
- Every body the validator refuses is answered with a 4xx problem and writes nothing.
"""

from __future__ import annotations

import json
import string
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.util import jsonutil
from tests.unit.hardening.test_faults import records
from tests.unit.helpers import body

SETTINGS = settings(deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))

# Keys: any text, including the empty string, dots, slashes, DynamoDB's type names, NUL, emoji.
keys = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", "S", "N", "M", "L", "NULL", "BOOL", "B", "SS", "a.b", "a/b", "~", "#x", ":v", "\x00", "é"]),
)
integers = st.one_of(
    st.integers(min_value=-(10**38) + 1, max_value=10**38 - 1),
    st.sampled_from([0, -1, 2, 10**37, -(10**37), 12345678901234567890]),
)
decimals = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(
        lambda d: d.is_zero() or (len(d.normalize().as_tuple().digits) <= 38 and -130 <= d.adjusted() <= 125)
    ),
    st.sampled_from([Decimal("0.1"), Decimal("2.0"), Decimal("-0.0"), Decimal("1E-130"), Decimal("9.99E+125"),
                     Decimal("0.30000000000000004"), Decimal("1.5E+10")]),
)
leaves = st.one_of(st.none(), st.booleans(), integers, decimals, st.text(max_size=20))
json_values = st.recursive(
    leaves,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)),
    max_leaves=25,
)
data_objects = st.dictionaries(keys, json_values, max_size=6)


def _same(sent: Any, got: Any, path: str = "") -> None:
    """Exact equality as the contract means it: ints stay ints, numbers keep their value."""
    if isinstance(sent, bool) or sent is None or isinstance(sent, str):
        assert got == sent and type(got) is type(sent), (path, sent, got)
    elif isinstance(sent, int):
        assert type(got) is int and got == sent, (path, sent, got)
    elif isinstance(sent, Decimal):
        assert isinstance(got, (int, Decimal)) and Decimal(got) == sent, (path, sent, got)
    elif isinstance(sent, dict):
        assert isinstance(got, dict) and list(got) == list(sent), (path, sent, got)
        for key in sent:
            _same(sent[key], got[key], f"{path}/{key}")
    else:
        assert isinstance(got, list) and len(got) == len(sent), (path, sent, got)
        for index, (a, b) in enumerate(zip(sent, got, strict=True)):
            _same(a, b, f"{path}/{index}")


def _accepted(payload: Any, model: str = "ItemCreate") -> bool:
    from pydantic import ValidationError

    from chalicelib.items import models

    try:
        getattr(models, model).model_validate(jsonutil.loads(jsonutil.dumps(payload)))
    except (ValidationError, TypeError):  # TypeError: NaN/Infinity, which has no JSON text
        return False
    return True


def _parse(raw: bytes) -> Any:
    return json.loads(raw, parse_float=Decimal)


@SETTINGS
@given(data=data_objects)
def test_accepted_data_round_trips_exactly(tenant, data):
    payload = {"name": "round trip", "data": data}
    if not _accepted(payload):
        return
    created = tenant.request("POST", "/items", raw=jsonutil.dumps(payload))
    assert created.status_code == 201, created.body
    _same(data, _parse(created.body)["data"])
    item_id = body(created)["id"]
    fetched = tenant.request("GET", f"/items/{item_id}")
    _same(data, _parse(fetched.body)["data"])
    listed = tenant.request("GET", "/items?limit=100&order=desc")
    assert listed.status_code == 200, listed.body
    replaced = tenant.request("PUT", f"/items/{item_id}", raw=jsonutil.dumps({"name": "again", "data": data}))
    assert replaced.status_code == 200, replaced.body
    _same(data, _parse(tenant.request("GET", f"/items/{item_id}").body)["data"])


@SETTINGS
@given(data=data_objects)
def test_accepted_data_patches_round_trip_exactly(tenant, data):
    """A merge patch's data (``null`` removes a key) lands exactly as RFC 7396 merges it."""
    from chalicelib.items.service import merge_patch

    start = {"keep": 1, "nested": {"a": Decimal("0.1")}}
    if not _accepted({"data": data}, "ItemPatch"):
        return
    created = tenant.request("POST", "/items", raw=jsonutil.dumps({"name": "patched", "data": start}))
    item_id = body(created)["id"]
    patched = tenant.request("PATCH", f"/items/{item_id}", raw=jsonutil.dumps({"data": data}),
                             content_type="application/merge-patch+json")
    expected = merge_patch(start, data)
    if not _accepted({"name": "x", "data": expected}):
        assert 400 <= patched.status_code < 500, patched.body  # e.g. the merged result is too deep
        return
    assert patched.status_code == 200, patched.body
    _same(expected, _parse(tenant.request("GET", f"/items/{item_id}").body)["data"])


printable = st.text(alphabet=string.printable, max_size=30)
field_values = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=300),
    st.lists(st.text(max_size=60), max_size=25), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.sampled_from(["", " ", "2020-01-01T00:00:00Z", "2999-01-01T00:00:00+01:00", "not a date", "x" * 201]),
)
bodies = st.one_of(
    st.dictionaries(
        st.sampled_from(["id", "name", "description", "tags", "data", "expires_at", "version", "created_at",
                         "updated_at", "extra", "Name"]),
        field_values, max_size=6,
    ),
    st.lists(st.integers(), max_size=3),
    st.text(max_size=10),
    st.integers(),
    st.none(),
)
raw_bodies = st.one_of(
    st.binary(max_size=40),
    printable,
    st.sampled_from(['{"name": "x",}', '{"name": NaN}', '{"name": "x", "data": {"n": Infinity}}', "[" * 5000,
                     '{"name": "\\ud800"}', "\xff\xfe", '{"name": "x"} trailing']),
)


@SETTINGS
@given(payload=bodies, method=st.sampled_from(["POST", "PUT", "PATCH"]))
def test_refused_bodies_are_4xx_and_change_nothing(tenant, payload, method):
    created = tenant.request("POST", "/items", {"id": "target", "name": "before"})
    assert created.status_code in (201, 409)
    model = {"POST": "ItemCreate", "PUT": "ItemReplace", "PATCH": "ItemPatch"}[method]
    if _accepted(payload, model) and isinstance(payload, dict) and not (method == "PATCH" and payload.get("name", 1) is None):
        return
    before = records(tenant)
    path = "/items" if method == "POST" else "/items/target"
    response = tenant.request(method, path, raw=json.dumps(payload))
    assert 400 <= response.status_code < 500, (payload, response.status_code, response.body)
    assert response.headers["Content-Type"] == "application/problem+json"
    assert records(tenant) == before


@SETTINGS
@given(raw=raw_bodies, method=st.sampled_from(["POST", "PUT", "PATCH"]))
def test_malformed_bodies_are_4xx_and_change_nothing(tenant, raw, method):
    model = {"POST": "ItemCreate", "PUT": "ItemReplace", "PATCH": "ItemPatch"}[method]
    try:
        if _accepted(jsonutil.loads(raw), model):
            return  # generated text that happens to be a valid body
    except jsonutil.MalformedJSON:
        pass
    tenant.request("POST", "/items", {"id": "target", "name": "before"})
    before = records(tenant)
    path = "/items" if method == "POST" else "/items/target"
    response = tenant.request(method, path, raw=raw)
    assert 400 <= response.status_code < 500, (raw, response.status_code, response.body)
    assert records(tenant) == before


@pytest.mark.parametrize("raw", [b"\xff", b'{"name": "\xc3"}', b"\x00"])
def test_bytes_that_are_not_utf8_are_400(tenant, raw):
    response = tenant.request("POST", "/items", raw=raw)
    assert response.status_code == 400, response.body
