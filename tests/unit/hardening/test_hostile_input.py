"""Input a hostile client sends that once ended in a 500: each is now a 4xx problem (or, where the
input is valid, a success) and a refused request changes nothing.

Each test here failed before its fix: integer literals over Python's 4,300-digit conversion limit,
timestamps whose UTC instant leaves the calendar, exponents no ``Decimal`` can hold, non-ASCII
digits, NaN and deep nesting hashed for an ``Idempotency-Key`` before validation, merge patches
too wide for one DynamoDB expression, and entity tags compared as numbers instead of as tags.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from chalicelib.items import repository as item_repository
from chalicelib.util import jsonutil
from tests.unit.conftest import Tenant
from tests.unit.hardening.test_faults import items_of, records
from tests.unit.helpers import assert_problem, body

PATCH = "application/merge-patch+json"
HUGE_INTEGER = "1" * 4301  # one digit over Python's int-from-text limit
HUGE_EXPONENT = "1e99999999999999999999"  # beyond any Decimal exponent


def _seed(tenant: Tenant, item_id: str = "it") -> dict[str, Any]:
    created = tenant.request("POST", "/items", {"id": item_id, "name": "seed", "data": {"keep": 1}})
    assert created.status_code == 201, created.body
    return body(created)


def _write(tenant: Tenant, method: str, raw: str, headers: dict[str, str] | None = None) -> Any:
    path = "/items" if method == "POST" else "/items/it"
    return tenant.request(method, path, raw=raw, headers=headers,
                          content_type=PATCH if method == "PATCH" else "application/json")


def _no_idempotency_records(tenant: Tenant) -> bool:
    return not [sk for sk in records(tenant) if sk.startswith("IDEMPOTENCY#")]


# -- numbers -------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
@pytest.mark.parametrize("literal", [HUGE_INTEGER, "-" + HUGE_INTEGER, HUGE_EXPONENT, "-1e-99999999999999999999",
                                     "1E+999999999999"])
def test_numbers_no_decimal_or_int_can_hold_are_422_at_their_field(tenant, method, literal):
    _seed(tenant)
    before = records(tenant)
    raw = f'{{"name": "n", "data": {{"big": {literal}}}}}'
    assert_problem(_write(tenant, method, raw), 422, "validation-error", ["/data/big"])
    assert records(tenant) == before


@pytest.mark.parametrize("literal", [HUGE_INTEGER, HUGE_EXPONENT, "1E+999999999999"])
def test_huge_numbers_with_an_idempotency_key_are_422_and_not_remembered(tenant, literal):
    before = records(tenant)
    raw = f'{{"name": "n", "data": {{"big": {literal}}}}}'
    response = tenant.request("POST", "/items", raw=raw, headers={"Idempotency-Key": "huge"})
    assert_problem(response, 422, "validation-error", ["/data/big"])
    assert records(tenant) == before


@pytest.mark.parametrize("literal", [HUGE_INTEGER, HUGE_EXPONENT])
def test_huge_numbers_in_other_fields_of_every_json_route(tenant, literal):
    _seed(tenant)
    before = records(tenant)
    cases = [
        ("POST", "/items", f'{{"name": {literal}}}', "/name"),
        ("PUT", "/items/it", f'{{"name": "n", "tags": [{literal}]}}', "/tags/0"),
        ("POST", "/items/it/attachments", f'{{"filename": "a.txt", "content_type": "text/plain", "size": {literal}}}',
         "/size"),
        ("POST", "/imports", f'{{"format": "csv", "size": {literal}}}', "/size"),
    ]
    for method, path, raw, pointer in cases:
        for headers in ({}, {"Idempotency-Key": f"k-{method}-{path}"}):
            response = tenant.request(method, path, raw=raw, headers=headers)
            assert_problem(response, 422, "validation-error", [pointer])
    assert records(tenant) == before


def test_numbers_within_limits_still_round_trip_exactly(tenant):
    raw = '{"name": "n", "data": {"a": 12345678901234567890, "b": 1E+125, "c": 0.1, "d": 2}}'
    created = tenant.request("POST", "/items", raw=raw)
    assert created.status_code == 201, created.body
    assert '"data":{"a":12345678901234567890,"b":1E+125,"c":0.1,"d":2}' in created.body.decode()


def test_the_parser_keeps_every_number_it_cannot_convert():
    parsed = jsonutil.loads(f'[{HUGE_INTEGER}, {HUGE_EXPONENT}, 7, 0.5]')
    assert str(parsed[0]) == HUGE_INTEGER
    assert isinstance(parsed[1], jsonutil.OutOfRangeNumber)
    assert parsed[2:] == [7, Decimal("0.5")]
    # Writing back gives the same values (an Idempotency-Key hashes exactly this text).
    again = jsonutil.loads(jsonutil.dumps(parsed))
    assert again[0] == Decimal(HUGE_INTEGER)
    assert again[1].literal == HUGE_EXPONENT


# -- NaN, Infinity and nesting: not JSON, refused before anything hashes them --------------------

@pytest.mark.parametrize("raw", ["[NaN]", "Infinity", "-Infinity", "NaN", '{"name": "n", "data": {"x": NaN}}',
                                 '{"name": "n", "data": {"x": [1, -Infinity]}}'])
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_nan_and_infinity_are_not_json_400(tenant, raw, method):
    _seed(tenant)
    before = records(tenant)
    assert_problem(_write(tenant, method, raw), 400, "bad-request")
    assert records(tenant) == before


def _deep(levels: int) -> str:
    return '{"name": "n", "data": ' + '{"a": ' * levels + "1" + "}" * levels + "}"


@pytest.mark.parametrize("raw", ['{"name": "n", "data": {"x": NaN}}', '{"name": "n", "data": Infinity}',
                                 _deep(900), "[" * 900 + "]" * 900])
@pytest.mark.parametrize("path", ["/items", "/imports", "/items/it/attachments"])
def test_with_an_idempotency_key_nan_and_deep_nesting_are_400(tenant, raw, path):
    _seed(tenant)
    before = records(tenant)
    response = tenant.request("POST", path, raw=raw, headers={"Idempotency-Key": "hostile"})
    assert_problem(response, 400, "bad-request")
    assert records(tenant) == before
    assert _no_idempotency_records(tenant)


def test_nesting_up_to_the_parser_limit_is_validated_not_refused_as_json(tenant):
    # 64 levels of body: valid JSON; its data is deeper than 16, so a 422 at /data.
    response = tenant.request("POST", "/items", raw=_deep(jsonutil.MAX_NESTING - 1))
    assert_problem(response, 422, "validation-error", ["/data"])
    assert_problem(tenant.request("POST", "/items", raw=_deep(jsonutil.MAX_NESTING)), 400, "bad-request")


# -- timestamps near the ends of the calendar ---------------------------------------------------

@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
@pytest.mark.parametrize("moment", ["9999-12-30T00:00:00Z", "9999-12-31T23:59:59.999Z", "9999-12-31T23:59:59+00:00"])
def test_expiry_in_the_last_week_of_9999_is_accepted(tenant, method, moment):
    _seed(tenant)
    response = _write(tenant, method, json.dumps({"name": "late", "expires_at": moment}))
    assert response.status_code in (200, 201), response.body
    assert body(response)["expires_at"].startswith("9999-12-")
    stored = items_of(tenant)
    assert any(r["expires_at"].startswith("9999-12-") for r in stored.values())


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
@pytest.mark.parametrize("moment", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-00:01"])
def test_offsets_that_leave_the_calendar_in_utc_are_422(tenant, method, moment):
    _seed(tenant)
    before = records(tenant)
    response = _write(tenant, method, json.dumps({"name": "n", "expires_at": moment}))
    assert_problem(response, 422, "validation-error", ["/expires_at"])
    assert records(tenant) == before


# -- non-ASCII digits ------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/items", "/imports"])
@pytest.mark.parametrize("limit", ["²", "١٢", "１", "1" * 5000, "-1", "0", "101", " 5", "5 "])
def test_limit_takes_ascii_digits_only(tenant, path, limit):
    assert_problem(tenant.request("GET", f"{path}?limit={limit}"), 400, "bad-request", ["/query/limit"])


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("tag", ['"²"', '"١"', '"１"'])
def test_non_ascii_digit_tags_are_tags_that_do_not_match(tenant, method, tag):
    item = _seed(tenant)
    payload = None if method == "DELETE" else {"name": "changed"}
    response = tenant.request(method, "/items/it", payload, headers={"If-Match": tag},
                              content_type=PATCH if method == "PATCH" else "application/json")
    assert_problem(response, 412, "precondition-failed")
    assert body(tenant.request("GET", "/items/it")) == item


# -- entity tags: RFC 9110 lists and strong comparison ------------------------------------------

@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("if_match", ['"01"', '"1 "', '"+1"', '"1.0"', '"a,b"', '"1,2"', 'W/"1"', ', W/"1"'])
def test_tags_that_are_not_exactly_the_etag_give_412(tenant, method, if_match):
    item = _seed(tenant)
    payload = None if method == "DELETE" else {"name": "changed"}
    response = tenant.request(method, "/items/it", payload, headers={"If-Match": if_match},
                              content_type=PATCH if method == "PATCH" else "application/json")
    if if_match == '"1 "':  # a space is not an etagc: malformed
        assert_problem(response, 400, "bad-request", ["/header/If-Match"])
    else:
        assert_problem(response, 412, "precondition-failed")
    assert body(tenant.request("GET", "/items/it")) == item


@pytest.mark.parametrize("if_match", ['"1",', ',"1"', ' , "1" ,, ', '"a,b", "1"', '"x", "1"', '"1"\t,\t"2"'])
def test_empty_list_elements_are_ignored_and_any_listed_tag_matches(tenant, if_match):
    _seed(tenant)
    response = tenant.request("PATCH", "/items/it", {"name": "changed"}, headers={"If-Match": if_match},
                              content_type=PATCH)
    assert response.status_code == 200, response.body
    assert body(response)["version"] == 2


@pytest.mark.parametrize(("header", "status"), [
    ('"1"', 304), ('"1",', 304), (',"1"', 304), ('"9", "1"', 304), ('W/"1"', 304), ('"a,b", "1"', 304), ("*", 304),
    ('"01"', 200), ('"a,b"', 200), ('"2"', 200), ('"²"', 200),
])
def test_if_none_match_parses_like_if_match(tenant, header, status):
    _seed(tenant)
    assert tenant.request("GET", "/items/it", headers={"If-None-Match": header}).status_code == status


@pytest.mark.parametrize("header", ["1", '"1', '"1" x', ",", "", '"a"b"', 'w/"1"'])
@pytest.mark.parametrize("name", ["If-Match", "If-None-Match"])
def test_malformed_tag_lists_are_400_for_both_headers(tenant, header, name):
    item = _seed(tenant)
    method = "PATCH" if name == "If-Match" else "GET"
    payload = {"name": "changed"} if method == "PATCH" else None
    response = tenant.request(method, "/items/it", payload, headers={name: header},
                              content_type=PATCH if method == "PATCH" else "application/json")
    assert_problem(response, 400, "bad-request", [f"/header/{name}"])
    assert body(tenant.request("GET", "/items/it")) == item


# -- merge patches too wide for one expression --------------------------------------------------

def test_expression_limits_are_dynamodbs():
    assert item_repository.within_expression_limits("SET " + ", ".join(f"#n{i} = :v{i}" for i in range(100)))
    assert not item_repository.within_expression_limits("x" * 4097)
    assert not item_repository.within_expression_limits(" AND ".join(["a = b"] * 151))  # 301 operators
    assert item_repository.within_expression_limits(" AND ".join(["a = b"] * 150))  # 299


def test_the_test_harness_refuses_expressions_over_4_kb_as_dynamodb_does(aws_mock):
    import boto3
    from botocore.exceptions import ClientError

    names = {f"#n{i}": f"k{i}" for i in range(400)}
    values = {f":v{i}": {"N": str(i)} for i in range(400)}
    expression = "SET " + ", ".join(f"#n{i} = :v{i}" for i in range(400))
    assert len(expression) > 4096
    with pytest.raises(ClientError, match="ValidationException"):
        boto3.client("dynamodb").update_item(
            TableName="items-test", Key={"pk": {"S": "T#nobody"}, "sk": {"S": "ITEM#x"}},
            UpdateExpression=expression, ExpressionAttributeNames=names, ExpressionAttributeValues=values,
        )


@pytest.mark.parametrize("keys", [150, 180, 300, 1000])
def test_a_patch_with_hundreds_of_data_keys_applies(tenant, faults, keys):
    _seed(tenant)
    patch = {"data": {f"key-{i}": i for i in range(keys)}, "description": "wide"}
    assert jsonutil.compact_size(patch["data"]) < 16 * 1024
    faults.clear()
    response = tenant.request("PATCH", "/items/it", patch, content_type=PATCH)
    assert response.status_code == 200, response.body
    item = body(response)
    assert item["data"] == {"keep": 1, **patch["data"]}
    assert item["version"] == 2
    assert items_of(tenant)["ITEM#it"]["data"] == {"keep": 1, **patch["data"]}
    # One GetItem and one UpdateItem (the authorizer's key lookup aside): a read-merge-write.
    operations = [op for op, params in faults.calls if "ITEM#" in json.dumps(params)]
    assert operations == ["GetItem", "UpdateItem"]


def test_a_wide_patch_keeps_if_match_and_removes_keys(tenant):
    _seed(tenant)
    patch = {"data": {**{f"k{i}": None for i in range(400)}, "keep": None, "new": True}}
    assert_problem(tenant.request("PATCH", "/items/it", patch, headers={"If-Match": '"2"'}, content_type=PATCH),
                   412, "precondition-failed")
    response = tenant.request("PATCH", "/items/it", patch, headers={"If-Match": '"1"'}, content_type=PATCH)
    assert response.status_code == 200, response.body
    assert body(response)["data"] == {"new": True}


def test_a_wide_patch_over_the_data_limit_is_422(tenant):
    _seed(tenant)
    before = records(tenant)
    patch = {"data": {f"key-{i:05d}": "v" * 20 for i in range(600)}}
    assert jsonutil.compact_size(patch["data"]) > 16 * 1024
    assert_problem(tenant.request("PATCH", "/items/it", patch, content_type=PATCH), 422, "validation-error", ["/data"])
    assert records(tenant) == before


@pytest.mark.parametrize("keys", [20, 90])
def test_a_narrow_patch_is_still_one_update(tenant, faults, keys):
    _seed(tenant)
    faults.clear()
    response = tenant.request("PATCH", "/items/it", {"data": {f"k{i}": i for i in range(keys)}}, content_type=PATCH)
    assert response.status_code == 200, response.body
    assert [op for op, params in faults.calls if "ITEM#" in json.dumps(params)] == ["UpdateItem"]
    assert body(response)["data"] == {"keep": 1, **{f"k{i}": i for i in range(keys)}}


@pytest.mark.parametrize("key", ["k\n", "k\r\n", "x" * 255 + "\n"])
def test_an_idempotency_key_with_a_final_newline_is_400(tenant, key):
    response = tenant.request("POST", "/items", {"name": "n"}, headers={"Idempotency-Key": key})
    assert_problem(response, 400, "bad-request", ["/header/Idempotency-Key"])
    assert records(tenant) == {k: v for k, v in records(tenant).items() if not k.startswith(("ITEM#", "IDEMP"))}
