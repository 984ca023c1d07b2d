"""Access tokens of the stage's Cognito user pool, verified offline against the pool's keys.

A token is accepted only when every check passes; any failure is ``None`` (the caller answers
401), so a malformed, truncated, oversized or forged token can never raise into a 5xx:

- shape: a JWS in compact form (three base64url parts), at most ``MAX_TOKEN_CHARS``, whose header
  names ``alg: RS256`` (the only algorithm Cognito signs with, and the only one accepted: no
  ``none``, no HMAC with a public key as secret) and a ``kid``;
- signature: RSASSA-PKCS1-v1_5 with SHA-256, by the pool's key of that ``kid`` (``KeySet``);
- claims: ``iss`` is the pool, ``token_use`` is ``access``, ``client_id`` is the stage's app
  client, ``exp`` is in the future and ``iat`` not in it (``LEEWAY_SECONDS`` of clock skew).

Why this and not a JWT library: PyJWT and joserfc import all of ``cryptography``'s X.509 and
elliptic-curve support (about 85 ms on the authorizer's cold start, measured with
``python -X importtime``), where the RSA verification alone costs about 18 ms. The parsing around
it is the few lines below, restricted to the one algorithm and the one claim set this service
accepts; the tests check it against tokens PyJWT signs and against the emulator's own tokens.
docs/AUTH.md has the figures.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from chalicelib.limits import ID_PATTERN

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

MAX_TOKEN_CHARS = 8192
LEEWAY_SECONDS = 60
ALGORITHM = "RS256"
# A person's tenant is a group of the pool, named by an administrator (tools/users.py).
TENANT_GROUP_PREFIX = "tenant:"
# People who signed themselves up and were never put into a tenant get one of their own, named
# after their ``sub`` (assigned by the pool, so nobody can choose it).
PERSONAL_TENANT_PREFIX = "u-"


@dataclass(frozen=True)
class Expected:
    """What a token of this stage must say: its pool (``iss``) and its app client."""

    issuer: str
    client_id: str


@dataclass(frozen=True)
class Claims:
    sub: str
    groups: tuple[str, ...]
    expires_at: int
    issued_at: int


class KeyLookup(Protocol):
    def key(self, kid: str) -> RSAPublicKey | None: ...


def _b64decode(part: str) -> bytes:
    if not part or len(part) % 4 == 1:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _json_object(part: str) -> dict[str, object]:
    value = json.loads(_b64decode(part))
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def verify(token: str, keys: KeyLookup, expected: Expected, now: float) -> Claims | None:
    """The claims of ``token`` when it is a live access token of ``expected``; otherwise None."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    if len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
        return None
    header_part, payload_part, signature_part = token.split(".")
    try:
        header = _json_object(header_part)
        signature = _b64decode(signature_part)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    kid = header.get("kid")
    if header.get("alg") != ALGORITHM or not isinstance(kid, str) or header.get("crit") is not None:
        return None
    public_key = keys.key(kid)
    if public_key is None:
        return None
    try:
        public_key.verify(
            signature, f"{header_part}.{payload_part}".encode("ascii"), padding.PKCS1v15(), hashes.SHA256()
        )
        payload = _json_object(payload_part)
    except (InvalidSignature, ValueError, binascii.Error, UnicodeDecodeError):
        return None
    return _claims(payload, expected, now)


def _claims(payload: dict[str, object], expected: Expected, now: float) -> Claims | None:
    sub, exp, iat, groups = payload.get("sub"), payload.get("exp"), payload.get("iat"), payload.get("cognito:groups", [])
    if (
        payload.get("iss") != expected.issuer
        or payload.get("token_use") != "access"
        or payload.get("client_id") != expected.client_id
        or not isinstance(sub, str)
        or not sub
        or not _is_time(exp)
        or not _is_time(iat)
        or not isinstance(groups, list)
        or not all(isinstance(g, str) for g in groups)
    ):
        return None
    assert isinstance(exp, int) and isinstance(iat, int)
    if exp + LEEWAY_SECONDS <= now or iat - LEEWAY_SECONDS > now:
        return None
    return Claims(sub=sub, groups=tuple(groups), expires_at=exp, issued_at=iat)


def _is_time(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def tenant_of(claims: Claims) -> str | None:
    """The tenant a person acts for: their one tenant group, else their own personal tenant.

    None when an administrator put them into more than one tenant (which one a request means would
    be a guess), or when a group names no valid tenant: the request is refused until an
    administrator fixes the membership.
    """
    tenants = [g[len(TENANT_GROUP_PREFIX):] for g in claims.groups if g.startswith(TENANT_GROUP_PREFIX)]
    if len(tenants) > 1:
        return None
    tenant = tenants[0] if tenants else PERSONAL_TENANT_PREFIX + claims.sub
    return tenant if _TENANT.match(tenant) else None


_TENANT = re.compile(ID_PATTERN)
