"""Opaque, tamper-proof pagination cursors.

A cursor carries the last key a page ended on, and an HMAC-SHA256 over it that also covers the
tenant, the listing (route) and the order. A cursor therefore cannot be forged or edited, and one
minted for another tenant, listing or order is rejected. The tenant is bound only through the
MAC, never written into the cursor, so a cursor reveals nothing about who minted it.

The first of the stage's secrets signs; every secret verifies, so secrets rotate without breaking
outstanding cursors.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

_TAG_BYTES = 16


class InvalidCursor(ValueError):
    pass


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _tag(secret: bytes, scope: str, payload: bytes) -> bytes:
    return hmac.new(secret, scope.encode() + b"\x00" + payload, hashlib.sha256).digest()[:_TAG_BYTES]


def _scope(tenant: str, listing: str, order: str) -> str:
    return f"{tenant}\x00{listing}\x00{order}"


def encode(last_key: str, *, tenant: str, listing: str, order: str, secret: bytes) -> str:
    payload = json.dumps({"k": last_key}, separators=(",", ":")).encode()
    tag = _tag(secret, _scope(tenant, listing, order), payload)
    return f"{_b64encode(payload)}.{_b64encode(tag)}"


def decode(
    cursor: str, *, tenant: str, listing: str, order: str, secrets: tuple[bytes, ...]
) -> str:
    try:
        payload_text, tag_text = cursor.split(".")
        payload = _b64decode(payload_text)
        tag = _b64decode(tag_text)
    except (ValueError, UnicodeEncodeError) as exc:
        raise InvalidCursor("is not a cursor issued by this listing") from exc
    scope = _scope(tenant, listing, order)
    if not any(hmac.compare_digest(tag, _tag(secret, scope, payload)) for secret in secrets):
        raise InvalidCursor("is not a cursor issued by this listing for this order")
    try:
        last_key = json.loads(payload)["k"]
    except (ValueError, KeyError, TypeError) as exc:  # pragma: no cover - covered by the MAC
        raise InvalidCursor("is not a cursor issued by this listing") from exc
    if not isinstance(last_key, str):  # pragma: no cover - covered by the MAC
        raise InvalidCursor("is not a cursor issued by this listing")
    return last_key
