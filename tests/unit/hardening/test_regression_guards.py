"""Guards against bugs that once slipped through every test.

Each test here was checked by putting its bug into the code and seeing the test fail:

- cursor verification that compares only a prefix of the tag (an empty tag then verifies);
- the entity-tag count limit moved from ``>`` to ``>=``, or removed;
- no length bound on the tags read as versions;
- ``If-None-Match`` reading only its first tag;
- a listing reading ``limit`` keys instead of ``limit + 1`` (a trailing empty page with a cursor).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re

import pytest

from chalicelib.store import cursor
from chalicelib.web import conditional
from tests.unit.hardening.test_faults import records
from tests.unit.helpers import assert_problem, body

PATCH = "application/merge-patch+json"
SECRETS = (b"guard-secret",)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _seed(tenant, count: int = 1) -> None:
    for n in range(count):
        assert tenant.request("POST", "/items", {"id": f"i{n:03d}", "name": f"n{n}"}).status_code == 201


# -- cursors: the whole tag, or nothing ---------------------------------------------------------

def _shortened_tags(token: str) -> list[str]:
    payload, tag = token.split(".")
    raw = _unb64(tag)
    return [f"{payload}.", payload, f"{payload}.{_b64(raw[:1])}", f"{payload}.{_b64(raw[:-1])}",
            f"{payload}.{_b64(raw[:8])}", f"{payload}.{_b64(raw + b'x')}"]


def test_a_cursor_with_a_truncated_or_empty_tag_does_not_verify():
    token = cursor.encode("i001", tenant="t", listing="items", order="asc", secret=SECRETS[0])
    assert cursor.decode(token, tenant="t", listing="items", order="asc", secrets=SECRETS) == "i001"
    for forged in _shortened_tags(token):
        with pytest.raises(cursor.InvalidCursor):
            cursor.decode(forged, tenant="t", listing="items", order="asc", secrets=SECRETS)


# Minted by this release with the secret above. A deployment must keep verifying the cursors the
# previous one issued (clients hold them across a deploy), so the format is fixed: base64url JSON
# payload without padding, a dot, the first 16 bytes of HMAC-SHA256 over "tenant NUL listing NUL
# order NUL payload", base64url without padding.
ISSUED = [
    ("i001", "asc", "eyJrIjoiaTAwMSJ9.E0drwY6A3e-Es8lwm_hDmg"),
    ("ünï/😀", "desc", "eyJrIjoiXHUwMGZjblx1MDBlZi9cdWQ4M2RcdWRlMDAifQ.UtdXRyOGmMFHLOUgGlDE4Q"),
]


@pytest.mark.parametrize(("key", "order", "token"), ISSUED)
def test_cursors_keep_their_format_across_releases(key, order, token):
    assert cursor.encode(key, tenant="t", listing="items", order=order, secret=SECRETS[0]) == token
    assert cursor.decode(token, tenant="t", listing="items", order=order, secrets=(b"newer", *SECRETS)) == key
    payload, tag = token.split(".")
    assert _unb64(payload) == json.dumps({"k": key}, separators=(",", ":")).encode()
    scope = f"t\x00items\x00{order}".encode()
    assert _unb64(tag) == hmac.new(SECRETS[0], scope + b"\x00" + _unb64(payload), hashlib.sha256).digest()[:16]
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", token)  # URL-safe, no padding


@pytest.mark.parametrize("payload", [b"not json", b"[]", b'{"x":"i001"}', b'{"k":7}', b'{"k":null}'])
def test_a_signed_cursor_whose_payload_is_not_a_key_is_refused(payload):
    """Defence behind the MAC: even a correctly signed payload must hold a string key."""
    tag = hmac.new(SECRETS[0], b"t\x00items\x00asc\x00" + payload, hashlib.sha256).digest()[:16]
    token = f"{_b64(payload)}.{_b64(tag)}"
    with pytest.raises(cursor.InvalidCursor, match="is not a cursor issued by this listing"):
        cursor.decode(token, tenant="t", listing="items", order="asc", secrets=SECRETS)


@pytest.mark.parametrize(("token", "detail"), [
    ("garbage", "is not a cursor issued by this listing"),
    ("a.b.c", "is not a cursor issued by this listing"),
    ("é.é", "is not a cursor issued by this listing"),
    (ISSUED[0][2], "is not a cursor issued by this listing for this order"),
])
def test_refused_cursors_say_why(tenant, token, detail):
    response = tenant.request("GET", f"/items?cursor={token}")
    problem = assert_problem(response, 400, "bad-request", ["/query/cursor"])
    assert problem["errors"][0]["detail"] == detail


@pytest.mark.parametrize("path", ["/items", "/imports"])
def test_the_api_refuses_cursors_with_truncated_or_empty_tags(tenant, path):
    if path == "/items":
        _seed(tenant, 3)
    else:
        for _ in range(3):
            assert tenant.request("POST", "/imports", {"format": "csv", "size": 10}).status_code == 201
    token = body(tenant.request("GET", f"{path}?limit=1"))["next_cursor"]
    assert token
    payload = token.split(".")[0]
    # A forged payload pointing elsewhere, with an empty tag: the forgery an empty tag would allow.
    forged = _b64(_unb64(payload).replace(b'"}', b'x"}'))
    for bad in [*_shortened_tags(token), f"{forged}.", f"{forged}.{token.split('.')[1][:4]}"]:
        response = tenant.request("GET", f"{path}?limit=1&cursor={bad}")
        assert_problem(response, 400, "bad-request", ["/query/cursor"])


# -- If-Match: at most 50 tags, exactly -----------------------------------------------------------

def _tags(count: int, matching: bool) -> str:
    tags = [f'"{n}"' for n in range(100, 100 + count - 1)] + (['"1"'] if matching else ['"999"'])
    return ", ".join(tags)


def test_fifty_tags_are_read_and_fifty_one_are_refused(tenant):
    _seed(tenant)
    assert conditional.MAX_ENTITY_TAGS == 50
    applied = tenant.request("PATCH", "/items/i000", {"name": "x"}, headers={"If-Match": _tags(50, True)},
                             content_type=PATCH)
    assert applied.status_code == 200, applied.body
    before = records(tenant)
    for header, value in (("If-Match", _tags(51, False)), ("If-Match", _tags(51, True))):
        response = tenant.request("PATCH", "/items/i000", {"name": "y"}, headers={header: value}, content_type=PATCH)
        assert_problem(response, 400, "bad-request", ["/header/If-Match"])
    assert records(tenant) == before
    # The same limit for If-None-Match: one parser.
    assert tenant.request("GET", "/items/i000", headers={"If-None-Match": _tags(50, False)}).status_code == 200
    assert_problem(tenant.request("GET", "/items/i000", headers={"If-None-Match": _tags(51, False)}),
                   400, "bad-request", ["/header/If-None-Match"])


def test_empty_elements_do_not_count_toward_the_limit(tenant):
    _seed(tenant)
    header = _tags(50, True) + ", ," * 30
    assert tenant.request("DELETE", "/items/i000", headers={"If-Match": header}).status_code == 204


# -- numeric tags of any length are tags, not numbers to convert ---------------------------------

@pytest.mark.parametrize("digits", [19, 20, 39, 4300, 4301, 6000])
@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_long_numeric_tags_never_match_and_never_fail(tenant, digits, method):
    _seed(tenant)
    before = records(tenant)
    payload = None if method == "DELETE" else {"name": "x"}
    tag = '"' + "1" * digits + '"'
    response = tenant.request(method, "/items/i000", payload, headers={"If-Match": f'{tag}, "7"'},
                              content_type=PATCH if method == "PATCH" else "application/json")
    assert_problem(response, 412, "precondition-failed")
    assert records(tenant) == before
    assert tenant.request("GET", "/items/i000", headers={"If-None-Match": tag}).status_code == 200


# -- If-None-Match reads every tag ------------------------------------------------------------------

@pytest.mark.parametrize("header", ['"9", "1"', '"9", "8", W/"1"', '"2","3","1"', '"x", "1"'])
def test_if_none_match_matches_any_listed_tag(tenant, header):
    _seed(tenant)
    response = tenant.request("GET", "/items/i000", headers={"If-None-Match": header})
    assert response.status_code == 304
    assert response.headers["ETag"] == '"1"'


# -- listings whose size is an exact multiple of the page size -----------------------------------

def _walk(tenant, path: str, key: str, limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    url = f"{path}?limit={limit}"
    while True:
        page = body(tenant.request("GET", url))
        pages.append([entry["id"] for entry in page[key]])
        if page["next_cursor"] is None:
            return pages
        assert len(pages) < 50
        url = f"{path}?limit={limit}&cursor={page['next_cursor']}"


@pytest.mark.parametrize("limit", [1, 2, 3, 6])
def test_items_in_an_exact_multiple_of_the_limit_end_without_an_empty_page(tenant, limit):
    _seed(tenant, 6)
    pages = _walk(tenant, "/items", "items", limit)
    assert [len(p) for p in pages] == [limit] * (6 // limit)
    assert [i for p in pages for i in p] == [f"i{n:03d}" for n in range(6)]


@pytest.mark.parametrize("limit", [1, 2, 4])
def test_imports_in_an_exact_multiple_of_the_limit_end_without_an_empty_page(tenant, limit):
    for _ in range(4):
        assert tenant.request("POST", "/imports", {"format": "jsonl", "size": 5}).status_code == 201
    pages = _walk(tenant, "/imports", "imports", limit)
    assert [len(p) for p in pages] == [limit] * (4 // limit)
