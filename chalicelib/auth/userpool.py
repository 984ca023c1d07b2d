"""The stage's Cognito user pool, as the authorizer sees it: its signing keys and its sessions.

Two HTTPS calls, both public endpoints of the pool that need no AWS credentials:

- the pool's JSON Web Key Set (``<issuer>/.well-known/jwks.json``), fetched once per container and
  kept; a token signed by a key the set does not hold yet (the pool rotated its keys) makes the
  set be fetched again, at most once per ``REFETCH_SECONDS``, so forged key ids cannot turn the
  authorizer into a flood of fetches;
- ``GetUser`` with the access token, which the pool refuses once the token was revoked (sign-out,
  ``GlobalSignOut``, ``AdminUserGlobalSignOut``) or its user disabled or deleted. A valid
  signature alone cannot tell that: a revoked token keeps verifying until it expires.

Both go to the pool's regional endpoint, or to ``AWS_ENDPOINT_URL_COGNITO_IDP`` /
``AWS_ENDPOINT_URL`` when set (the AWS SDKs' own variables), which is how the local stack points
the same code at its emulator. Neither needs botocore, so the token path of a cold authorizer does
not pay for loading it.

A failure to reach the pool (network, timeout, throttling, 5xx) raises ``PoolUnavailable``: the
authorizer fails, and API Gateway answers 503 without caching the answer (auth/gateway.py).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

TIMEOUT_SECONDS = 3
REFETCH_SECONDS = 10
MAX_RESPONSE_BYTES = 1 << 20
_TARGET = "AWSCognitoIdentityProviderService.GetUser"
# GetUser's answers for a token the pool no longer honours (API reference, GetUser, Errors).
_SIGNED_OUT = frozenset({"NotAuthorizedException", "UserNotFoundException", "PasswordResetRequiredException",
                         "UserNotConfirmedException"})


class PoolUnavailable(RuntimeError):
    """The user pool could not be asked (network, timeout, throttling, a 5xx)."""


def issuer(region: str, pool_id: str) -> str:
    """The ``iss`` of the pool's tokens: always the regional AWS address, emulated or not."""
    return f"https://cognito-idp.{region}.amazonaws.com/{pool_id}"


def endpoint(region: str) -> str:
    configured = os.environ.get("AWS_ENDPOINT_URL_COGNITO_IDP") or os.environ.get("AWS_ENDPOINT_URL")
    return (configured or f"https://cognito-idp.{region}.amazonaws.com").rstrip("/")


def jwks_url(region: str, pool_id: str) -> str:
    return f"{endpoint(region)}/{pool_id}/.well-known/jwks.json"


Fetch = Callable[[str, bytes | None, dict[str, str]], tuple[int, bytes]]


def _http(url: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, bytes]:
    """One request; the status and body of any HTTP answer, ``PoolUnavailable`` for no answer."""
    import urllib.error
    import urllib.request

    if not url.startswith(("https://", "http://")):
        raise PoolUnavailable(f"the user pool's address is not http(s): {url}")
    method = "POST" if body is not None else "GET"
    request = urllib.request.Request(url, data=body, headers=headers, method=method)  # noqa: S310 (scheme checked above)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            return int(response.status), response.read(MAX_RESPONSE_BYTES)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(MAX_RESPONSE_BYTES)
    except (OSError, ValueError) as exc:  # URLError, timeouts and refused connections are OSErrors
        raise PoolUnavailable(f"the user pool did not answer: {exc}") from exc


class KeySet:
    """The pool's public keys by ``kid``, fetched on first use and again when a new ``kid`` shows up."""

    def __init__(self, url: str, fetch: Fetch = _http, clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self._fetch = fetch
        self._clock = clock
        self._keys: dict[str, RSAPublicKey] = {}
        self._fetched_at: float | None = None
        self._lock = threading.Lock()

    def key(self, kid: str) -> RSAPublicKey | None:
        with self._lock:
            known = self._keys.get(kid)
            if known is not None:
                return known
            if self._fetched_at is not None and self._clock() - self._fetched_at < REFETCH_SECONDS:
                return None
            self._keys = self._load()
            self._fetched_at = self._clock()
            return self._keys.get(kid)

    def _load(self) -> dict[str, RSAPublicKey]:
        status, body = self._fetch(self.url, None, {"Accept": "application/json"})
        if status != 200:
            raise PoolUnavailable(f"the user pool's keys answered {status}")
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise PoolUnavailable("the user pool's keys are not JSON") from exc
        found = document.get("keys") if isinstance(document, dict) else None
        return {kid: public for kid, public in map(_rsa_key, found if isinstance(found, list) else []) if public}


def _rsa_key(jwk: object) -> tuple[str, RSAPublicKey | None]:
    """A signing key of the set, or ``("", None)`` for an entry that is not an RSA signing key."""
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers

    from chalicelib.auth.tokens import ALGORITHM

    if not isinstance(jwk, dict) or jwk.get("kty") != "RSA" or jwk.get("use", "sig") != "sig":
        return "", None
    kid, n, e = jwk.get("kid"), jwk.get("n"), jwk.get("e")
    if jwk.get("alg", ALGORITHM) != ALGORITHM or not all(isinstance(v, str) and v for v in (kid, n, e)):
        return "", None
    assert isinstance(kid, str) and isinstance(n, str) and isinstance(e, str)
    try:
        numbers = RSAPublicNumbers(_uint(e), _uint(n))
        return kid, numbers.public_key()
    except ValueError:
        return "", None


def _uint(text: str) -> int:
    import base64

    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


_key_sets: dict[str, KeySet] = {}
_key_sets_lock = threading.Lock()


def key_set(region: str, pool_id: str) -> KeySet:
    """The container's one key set of the pool (kept for the life of the process)."""
    url = jwks_url(region, pool_id)
    with _key_sets_lock:
        found = _key_sets.get(url)
        if found is None:
            found = _key_sets[url] = KeySet(url)
        return found


def signed_in(token: str, region: str, fetch: Fetch = _http) -> bool:
    """Whether the pool still honours ``token`` (GetUser answers for it)."""
    body = json.dumps({"AccessToken": token}).encode()
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": _TARGET}
    status, answer = fetch(endpoint(region) + "/", body, headers)
    if status == 200:
        return True
    if status == 400 and _error_type(answer) in _SIGNED_OUT:
        return False
    raise PoolUnavailable(f"GetUser answered {status} {_error_type(answer)}")


def _error_type(answer: bytes) -> str:
    """The error's name: ``__type`` may carry a namespace (``…#NotAuthorizedException``)."""
    try:
        document = json.loads(answer)
    except ValueError:
        return ""
    kind = document.get("__type", "") if isinstance(document, dict) else ""
    return str(kind).rsplit("#", 1)[-1]
