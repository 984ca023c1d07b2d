"""API keys: issued to a tenant, stored only as SHA-256 hashes, looked up by hash.

Keys are long random strings, so a fast hash is the right tool (a slow password hash protects
guessable secrets; these are not guessable). A key is looked up by the hash of what the client
sent, so the secret itself is never compared, stored or logged.

Two records per key, written in one transaction: the lookup record keyed by the hash (what the
authorizer reads, one ``GetItem``) and a listing record in the tenant's partition (what the
command-line tool lists and revokes by key id).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.store import aws, layout
from chalicelib.store.codec import from_item, to_item
from chalicelib.store.layout import tenant_pk
from chalicelib.util import clock

KEY_PATTERN = re.compile(r"^[\x21-\x7e]{16,128}$")
KEY_PREFIX = "isk_"


@dataclass(frozen=True)
class Principal:
    tenant: str
    key_id: str


class InvalidKeyRequest(ValueError):
    """A key or tenant given to the key tool is not acceptable."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _lookup_key(key_hash: str) -> dict[str, Any]:
    return layout.api_key_lookup_key(key_hash)


def parse_bearer(header_value: str | None) -> str | None:
    """The key of ``Authorization: Bearer <key>``; None when absent or of another scheme."""
    if not header_value:
        return None
    scheme, _, token = header_value.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return token or None


def authenticate(key: str, table: str) -> Principal | None:
    if not KEY_PATTERN.match(key):
        return None
    key_hash = hash_key(key)
    item = aws.dynamodb().get_item(TableName=table, Key=_lookup_key(key_hash)).get("Item")
    if not item:
        return None
    record = from_item(item)
    # The look-up was by hash already; comparing again in constant time costs nothing and keeps
    # the check independent of how the table is keyed.
    if not hmac.compare_digest(str(record.get("key_hash", "")), key_hash):
        return None
    return Principal(tenant=str(record["tenant"]), key_id=str(record["key_id"]))


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def create(table: str, tenant: str, key: str | None = None, label: str = "") -> tuple[str, str]:
    """Store a key for ``tenant`` (a new random one unless given); returns ``(key_id, key)``."""
    from chalicelib.limits import ID_PATTERN, is_valid_id  # cold start: the authorizer only looks keys up

    if not is_valid_id(tenant):
        raise InvalidKeyRequest(f"tenant must match {ID_PATTERN}")
    key = key or new_key()
    if not KEY_PATTERN.match(key):
        raise InvalidKeyRequest("a key must be 16-128 printable ASCII characters without spaces")
    key_hash = hash_key(key)
    key_id = "key_" + secrets.token_hex(6)
    created_at = clock.now_text()
    lookup = {"tenant": tenant, "key_id": key_id, "key_hash": key_hash, "created_at": created_at}
    listing = {
        "pk": tenant_pk(tenant),
        "sk": layout.api_key_sk(key_id),
        "key_id": key_id,
        "key_hash": key_hash,
        "label": label,
        "created_at": created_at,
    }
    try:
        aws.dynamodb().transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": table,
                        "Item": {**_lookup_key(key_hash), **to_item(lookup)},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {"Put": {"TableName": table, "Item": to_item(listing)}},
            ]
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "TransactionCanceledException":
            raise InvalidKeyRequest("that key is already registered") from exc
        raise
    return key_id, key


def list_keys(table: str, tenant: str) -> list[dict[str, Any]]:
    paginator = aws.dynamodb().get_paginator("query")
    result = []
    for page in paginator.paginate(
        TableName=table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues={":pk": {"S": tenant_pk(tenant)}, ":prefix": {"S": layout.API_KEY_PREFIX}},
    ):
        for item in page.get("Items", []):
            record = from_item(item)
            fields: dict[str, Any] = {k: record[k] for k in ("key_id", "label", "created_at") if k in record}
            result.append(fields)
    return result


def revoke(table: str, tenant: str, key_id: str) -> bool:
    """Delete both records of a key; False if the tenant has no such key."""
    listing_key = layout.key(tenant_pk(tenant), layout.api_key_sk(key_id))
    item = aws.dynamodb().get_item(TableName=table, Key=listing_key, ConsistentRead=True).get("Item")
    if not item:
        return False
    key_hash = str(from_item(item)["key_hash"])
    aws.dynamodb().transact_write_items(
        TransactItems=[
            {"Delete": {"TableName": table, "Key": _lookup_key(key_hash)}},
            {"Delete": {"TableName": table, "Key": listing_key}},
        ]
    )
    return True
