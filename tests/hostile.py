"""Generated hostile requests for every route, and what any answer to them must look like.

Used twice: through the Chalice test client (breadth: hundreds of requests in seconds) and against
the real local stack (``make run``'s servers). A request is a route with hostile path ids, query
strings, headers (``If-Match``, ``If-None-Match``, ``Idempotency-Key``, ``Content-Type``) and a
hostile body: deep, wide, huge numbers, odd Unicode, duplicate keys, every JSON type in every
field. The answer must be a success or a well-formed 4xx problem document, never a 5xx.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

from chalicelib.problems import PROBLEM_TYPES

SEEDED_ITEM = "it"

# -- bodies ---------------------------------------------------------------------------------------

NUMBER_LITERALS = [
    "0", "-0", "1", "-1", "2", "0.1", "1e5", "1E+125", "1E+126", "1e-130", "1e-131", "12345678901234567890",
    "1" * 39, "1" * 4300, "1" * 4301, "-" + "9" * 5000, "1e99999999999999999999", "-1e-99999999999999999999",
    "1E+999999999999", "0.000000000000000000000000000000000000001", "NaN", "Infinity", "-Infinity", "1.5e308",
    "1e400",
]
STRING_LITERALS = [
    '""', '" "', '"\\u0000"', '"\\ud800"', '"\\udfff\\ud800"', '"\\ud83d\\ude00"', '"\u202eevil"', '"\ufeff"',
    '"x\\ny"', '"é"', '"ß"', '"İ"', '"\u0661\u0662"', '"²"', '"' + "x" * 300 + '"', '"' + "é" * 2100 + '"',
    '"9999-12-31T23:59:59.999Z"', '"9999-12-31T23:00:00-05:00"', '"0001-01-01T00:00:00+01:00"',
    '"2030-01-01T00:00:00Z"', '"2001-01-01T00:00:00Z"', '"2030-02-30T00:00:00Z"', '"2030-01-01T24:00:00Z"',
    '"9999-12-30T00:00:00Z"', '"text/plain"', '"csv"', '"jsonl"', '"a/b"', '"..\\\\x"',
]
FIELDS = [
    "name", "description", "tags", "data", "expires_at", "id", "version", "created_at", "updated_at", "filename",
    "content_type", "size", "format", "status", "", "Name", "__proto__", "data.x",
]

scalar_text = st.one_of(
    st.sampled_from(["null", "true", "false", *NUMBER_LITERALS, *STRING_LITERALS]),
    st.integers().map(str),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.text(max_size=12).map(json.dumps),
    st.text(max_size=12).map(lambda s: json.dumps(s, ensure_ascii=False)),
)
keys = st.one_of(st.sampled_from(FIELDS), st.text(max_size=8))


def _object(pairs: list[tuple[str, str]]) -> str:
    """An object as text; ``pairs`` may repeat a key (duplicate keys are legal JSON text)."""
    return "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in pairs) + "}"


json_text = st.recursive(
    scalar_text,
    lambda children: st.one_of(
        st.lists(children, max_size=5).map(lambda items: "[" + ",".join(items) + "]"),
        st.lists(st.tuples(keys, children), max_size=5).map(_object),
    ),
    max_leaves=20,
)
field_objects = st.lists(st.tuples(st.sampled_from(FIELDS), json_text), max_size=8).map(_object)


def _deep(levels: int, array: bool) -> str:
    if array:
        return "[" * levels + "]" * levels
    return '{"name":"deep","data":' + '{"a":' * levels + "1" + "}" * levels + "}"


def _wide(keys_count: int) -> str:
    return '{"data":{' + ",".join(f'"k{i}":{i}' for i in range(keys_count)) + "}}"


bodies = st.one_of(
    field_objects,
    field_objects,
    json_text,
    st.builds(_deep, st.integers(1, 1500), st.booleans()),
    st.integers(0, 900).map(_wide),
    st.sampled_from([
        '{"name":"ok"}', '{"name":"ok","data":{"n":1}}', '{"filename":"a.txt","content_type":"text/plain","size":5}',
        '{"format":"csv","size":10}', '{"name":"x","name":"y"}', '{"name":"' + "x" * 70000 + '"}', "", " ", "{}",
        "[]", "[NaN]", "Infinity", '{"name": "x",}', "\ufeff{}",
    ]),
    st.text(max_size=40),
    st.binary(max_size=40),  # not necessarily UTF-8
)

# -- headers -----------------------------------------------------------------------------------------

TAG_LISTS = [
    "*", '"1"', '"2"', '"01"', '"a,b"', '"1",', ',"1"', 'W/"1"', '"²"', '"١٢"', '"' + "9" * 5000 + '"', '"9", "1"',
    ", ".join(['"1"'] * 51), ", ".join(f'"{n}"' for n in range(50)), "", ",", '"1" "2"', '"1', "1", "**", '*, "1"',
]
tag_lists = st.one_of(st.sampled_from(TAG_LISTS), st.text(alphabet='"W/,* \t0123456789ab²١é', max_size=24))
idempotency_keys = st.one_of(
    st.sampled_from(["k", "x" * 255, "x" * 256, "", " ", "é", "\x00", "a\tb", "key with spaces"]),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=12),
)
content_types = st.one_of(st.just("application/json"), st.sampled_from([
    "application/json", "application/merge-patch+json", "application/json; charset=utf-8",
    "APPLICATION/JSON", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
    "application/problem+json", "application/json;", "*/*", "",
]))

# -- routes, ids and query strings ---------------------------------------------------------------------

ids = st.one_of(
    st.just(SEEDED_ITEM),
    st.sampled_from(["missing", "x" * 64, "x" * 65, "a.b", "%00", "..", "ITEM#it", "é", "1" * 4301]),
    st.text(alphabet=st.characters(blacklist_characters="/?#", blacklist_categories=("Cs",)), min_size=1,
            max_size=20),
)
query_values = st.one_of(
    st.sampled_from(["1", "20", "100", "101", "0", "-1", "²", "١٢", "１", "1" * 5000, "asc", "desc", "up", "id",
                     "name", "updated_at", "", "a.b", "x" * 200]),
    st.text(max_size=12),
)
queries = st.dictionaries(st.sampled_from(["limit", "order", "cursor", "tag", "q", "sort", "other"]), query_values,
                          max_size=4)

ROUTES = [
    ("POST", "/items"), ("GET", "/items"), ("GET", "/items/{id}"), ("PUT", "/items/{id}"), ("PATCH", "/items/{id}"),
    ("DELETE", "/items/{id}"), ("POST", "/items/{id}/attachments"), ("GET", "/items/{id}/attachments"),
    ("GET", "/items/{id}/attachments/{id2}"), ("DELETE", "/items/{id}/attachments/{id2}"), ("POST", "/imports"),
    ("GET", "/imports"), ("GET", "/imports/{id}"), ("GET", "/health"), ("GET", "/nowhere/{id}"),
    # Methods a route does not have.
    ("PATCH", "/imports"), ("PUT", "/items"), ("POST", "/items/{id}"),
]


@dataclass
class HostileRequest:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str | bytes | None = None

    @property
    def raw_body(self) -> bytes:
        if self.body is None:
            return b""
        return self.body if isinstance(self.body, bytes) else self.body.encode("utf-8")

    @property
    def writes(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH", "DELETE")


@st.composite
def requests(draw: Any, latin1_headers: bool = False) -> HostileRequest:
    """One hostile request. ``latin1_headers``: header values an HTTP client can send (obs-text)."""
    method, template = draw(st.sampled_from(ROUTES))
    path = template.replace("{id}", quote(draw(ids), safe="")).replace("{id2}", quote(draw(ids), safe=""))
    query = draw(queries)
    if query:
        path += "?" + "&".join(f"{name}={quote(value, safe='')}" for name, value in query.items())
    headers: dict[str, str] = {}
    for name, strategy in (("If-Match", tag_lists), ("If-None-Match", tag_lists), ("Idempotency-Key", idempotency_keys)):
        if draw(st.booleans()):
            headers[name] = draw(strategy)
    content_type = draw(content_types)
    if content_type:
        headers["Content-Type"] = content_type
    if latin1_headers:
        headers = {name: value for name, value in headers.items() if _sendable(value)}
    body = draw(bodies) if method in ("POST", "PUT", "PATCH") or draw(st.booleans()) else None
    return HostileRequest(method, path, headers, body)


def _sendable(value: str) -> bool:
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    # What an HTTP client sends as is: no line breaks, NUL, or surrounding whitespace (which HTTP
    # strips anyway).
    return value == value.strip(" \t") and not any(c in value for c in "\r\n\x00")


# -- the answer ----------------------------------------------------------------------------------------

def problems_in(status: int, headers: dict[str, str], raw: bytes | str | None) -> list[str]:
    """What is wrong with an answer (empty when it is a success or a well-formed 4xx problem)."""
    if status >= 500:
        return [f"status {status}"]
    if status < 400:
        return []
    found = []
    content_type = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
    if not content_type.startswith("application/problem+json"):
        found.append(f"content type {content_type!r}")
    try:
        document = json.loads(raw or b"")
    except ValueError:
        return [*found, "body is not JSON"]
    if not isinstance(document, dict):
        return [*found, "body is not an object"]
    slug = str(document.get("type", "")).removeprefix("/problems/")
    if slug not in PROBLEM_TYPES or PROBLEM_TYPES[slug][0] != status:
        found.append(f"type {document.get('type')!r} for status {status}")
    if document.get("status") != status:
        found.append(f"status member {document.get('status')!r}")
    if not document.get("title") or not document.get("detail"):
        found.append("title or detail missing")
    return found
