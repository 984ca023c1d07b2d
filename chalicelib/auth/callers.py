"""Who is calling: an API key (machines) or a person's access token from the stage's user pool.

Both arrive as ``Authorization: Bearer <credential>`` and end as the same ``Principal``: the
tenant the caller acts for, and the identity its rate limit counts (the key's id, or
``user:<sub>``). What the rest of the service does never depends on which kind it was.

- A key is looked up by its hash (one ``GetItem``, auth/apikeys.py); an unknown key is denied (403).
- A token is verified offline (auth/tokens.py), then the pool is asked whether it still honours it
  (auth/userpool.py); a forged, expired, revoked or foreign token is ``Unauthorized`` (401).

The tenant of a person comes from the token's claims only (auth/tokens.py ``tenant_of``), never
from the request. API Gateway caches the authorizer's answer per ``Authorization`` value, so one
caller's answer never serves another.
"""

from __future__ import annotations

import base64
import binascii
import json
import time

from chalicelib.auth import apikeys, gateway
from chalicelib.auth.apikeys import Principal
from chalicelib.config.settings import Settings, require


class Unauthorized(Exception):
    """The credential is not a live one: API Gateway answers 401 (``UNAUTHORIZED``).

    A Lambda authorizer says so by failing with exactly this message.
    """

    def __init__(self) -> None:
        super().__init__("Unauthorized")


def authenticate(authorization: str | None, settings: Settings) -> Principal | None:
    """The caller; None for an unknown API key; ``Unauthorized`` for a bad or missing credential."""
    credential = apikeys.parse_bearer(authorization)
    if credential is None:
        raise Unauthorized()
    if looks_like_token(credential):
        return _person(credential, settings)
    with gateway.unavailable_when_dependencies_fail():
        return apikeys.authenticate(credential, require(settings.table_name, "TABLE_NAME"))


def looks_like_token(credential: str) -> bool:
    """A JWS in compact form whose header names a key: a token, not an API key.

    Told apart without loading the token path: API keys (``isk_…``, or 16–128 printable characters
    an operator chose) never decode to a JSON header naming ``alg`` and ``kid``, even with two dots.
    """
    parts = credential.split(".")
    if len(parts) != 3 or not parts[0]:
        return False
    try:
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    except (ValueError, binascii.Error):
        return False
    return isinstance(header, dict) and "kid" in header and "alg" in header


def _person(token: str, settings: Settings) -> Principal | None:
    from chalicelib.auth import tokens, userpool

    pool, client = settings.user_pool_id, settings.user_pool_client_id
    if not pool or not client:
        raise Unauthorized()
    expected = tokens.Expected(issuer=userpool.issuer(settings.region, pool), client_id=client)
    try:
        claims = tokens.verify(token, userpool.key_set(settings.region, pool), expected, time.time())
        if claims is None or not userpool.signed_in(token, settings.region):
            raise Unauthorized()
    except userpool.PoolUnavailable as exc:
        raise gateway.AuthorizerUnavailable(gateway.POOL_DETAIL) from exc
    tenant = tokens.tenant_of(claims)
    return Principal(tenant=tenant, key_id=f"user:{claims.sub}") if tenant else None
