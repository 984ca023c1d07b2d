"""API keys (``chalicelib/auth/apikeys.py``): the key a tenant holds, and what the authorizer learns from it."""

from __future__ import annotations

import os
import re

import pytest

from chalicelib.auth import apikeys

TABLE = "items-test"


@pytest.mark.parametrize(("header", "key"), [
    ("Bearer abc", "abc"),
    ("bearer abc", "abc"),
    ("BEARER abc", "abc"),
    ("Bearer   abc  ", "abc"),  # RFC 6750: "Bearer" 1*SP token
    ("  Bearer abc", "abc"),
    ("Bearer", None),
    ("Bearer ", None),
    ("Basic abc", None),
    ("Bearerabc", None),
    ("", None),
    (None, None),
])
def test_parse_bearer(header, key):
    assert apikeys.parse_bearer(header) == key


def test_issued_keys_are_long_random_and_named(aws_mock):
    key_id, key = apikeys.create(TABLE, "issuer")
    assert re.fullmatch(r"isk_[A-Za-z0-9_-]{43}", key)  # 32 random bytes, base64url
    assert re.fullmatch(r"key_[0-9a-f]{12}", key_id)
    assert apikeys.create(TABLE, "issuer")[1] != key
    [listed, *_] = [k for k in apikeys.list_keys(TABLE, "issuer") if k["key_id"] == key_id]
    assert listed["label"] == ""
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", listed["created_at"])


def test_authenticate_names_the_tenant_and_the_key(aws_mock):
    """The key id is what rate limits count by, the tenant what every record is scoped to."""
    key_id, key = apikeys.create(TABLE, "holder", label="reporting")
    principal = apikeys.authenticate(key, TABLE)
    assert principal == apikeys.Principal(tenant="holder", key_id=key_id)
    assert apikeys.authenticate(key + "x", TABLE) is None
    assert apikeys.authenticate(key[:-1], TABLE) is None
    assert apikeys.authenticate("short", TABLE) is None
    assert apikeys.list_keys(TABLE, "holder") == [
        {"key_id": key_id, "label": "reporting", "created_at": apikeys.list_keys(TABLE, "holder")[0]["created_at"]}
    ]


@pytest.mark.parametrize(("tenant", "key", "message"), [
    ("bad tenant!", None, "tenant must match ^[A-Za-z0-9_-]{1,64}$"),
    ("", None, "tenant must match"),
    ("x" * 65, None, "tenant must match"),
    ("ok", "too-short", "a key must be 16-128 printable ASCII characters without spaces"),
    ("ok", "has a space in it 0123456789", "a key must be 16-128"),
    ("ok", "x" * 129, "a key must be 16-128"),
])
def test_the_key_tool_says_what_is_wrong(aws_mock, tenant, key, message):
    with pytest.raises(apikeys.InvalidKeyRequest) as raised:
        apikeys.create(os.environ["TABLE_NAME"], tenant, key=key)
    assert str(raised.value).startswith(message)
