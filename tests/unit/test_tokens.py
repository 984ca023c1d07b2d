"""Access-token verification (chalicelib/auth/tokens.py, userpool.py, callers.py).

Tokens are signed by PyJWT, an independent implementation, with keys made here: what PyJWT signs
for the right pool verifies, and every forgery, expiry, wrong issuer or audience, ``alg=none``,
algorithm confusion and truncation is refused. The pool's key set is exercised over real HTTP on
loopback, including a key rotation.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from chalicelib.auth import callers, tokens, userpool
from chalicelib.auth.gateway import AuthorizerUnavailable
from chalicelib.config.settings import get_settings

ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_pool"
CLIENT = "client-web"
EXPECTED = tokens.Expected(issuer=ISSUER, client_id=CLIENT)
NOW = 1_900_000_000


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


KEY, OTHER_KEY = _key(), _key()


def _jwk(private: rsa.RSAPrivateKey, kid: str) -> dict[str, str]:
    numbers = private.public_key().public_numbers()

    def b64(value: int) -> str:
        return base64.urlsafe_b64encode(value.to_bytes((value.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()

    return {"kid": kid, "kty": "RSA", "alg": "RS256", "use": "sig", "n": b64(numbers.n), "e": b64(numbers.e)}


class Keys:
    """The pool's key set as ``verify`` consults it (``KeyLookup``), without HTTP."""

    def __init__(self, **keys: rsa.RSAPrivateKey) -> None:
        self.keys = {kid: private.public_key() for kid, private in keys.items()}

    def key(self, kid: str) -> Any:
        return self.keys.get(kid)


def claims(**overrides: Any) -> dict[str, Any]:
    payload = {"iss": ISSUER, "sub": "5f0c-sub", "client_id": CLIENT, "token_use": "access",
               "iat": NOW - 10, "exp": NOW + 900, "scope": "aws.cognito.signin.user.admin"}
    payload.update(overrides)
    return {k: v for k, v in payload.items() if v is not None}


def sign(payload: dict[str, Any], key: rsa.RSAPrivateKey = KEY, kid: str = "k1", algorithm: str = "RS256") -> str:
    return jwt.encode(payload, key, algorithm=algorithm, headers={"kid": kid})


def test_a_token_of_the_pool_verifies() -> None:
    verified = tokens.verify(sign(claims()), Keys(k1=KEY), EXPECTED, NOW)
    assert verified == tokens.Claims(sub="5f0c-sub", groups=(), expires_at=NOW + 900, issued_at=NOW - 10)


@pytest.mark.parametrize(
    ("what", "payload"),
    [
        ("expired", claims(exp=NOW - tokens.LEEWAY_SECONDS - 1)),
        ("issued in the future", claims(iat=NOW + tokens.LEEWAY_SECONDS + 5)),
        ("another pool", claims(iss="https://cognito-idp.us-east-1.amazonaws.com/us-east-1_other")),
        ("another app client", claims(client_id="someone-elses-client")),
        ("an ID token", claims(token_use="id")),
        ("no subject", claims(sub=None)),
        ("no expiry", claims(exp=None)),
        ("expiry as text", claims(exp=str(NOW + 900))),
        ("groups not a list", claims(**{"cognito:groups": "tenant:acme"})),
    ],
)
def test_claims_that_do_not_hold_are_refused(what: str, payload: dict[str, Any]) -> None:
    assert tokens.verify(sign(payload), Keys(k1=KEY), EXPECTED, NOW) is None, what


def test_the_clock_skew_allowance_is_bounded() -> None:
    assert tokens.verify(sign(claims(exp=NOW - 5)), Keys(k1=KEY), EXPECTED, NOW) is not None
    assert tokens.verify(sign(claims(exp=NOW - 5)), Keys(k1=KEY), EXPECTED, NOW + tokens.LEEWAY_SECONDS) is None


def test_a_token_signed_by_another_key_under_the_pools_key_id_is_forged() -> None:
    assert tokens.verify(sign(claims(), key=OTHER_KEY), Keys(k1=KEY), EXPECTED, NOW) is None


def test_an_unknown_key_id_is_refused() -> None:
    assert tokens.verify(sign(claims(), kid="k9"), Keys(k1=KEY), EXPECTED, NOW) is None


def test_alg_none_is_refused() -> None:
    unsigned = jwt.encode(claims(), None, algorithm="none", headers={"kid": "k1"})
    assert tokens.verify(unsigned, Keys(k1=KEY), EXPECTED, NOW) is None
    # The same with the signature part of a real token glued on.
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "kid": "k1"}).encode()).rstrip(b"=").decode()
    _, payload, signature = sign(claims()).split(".")
    assert tokens.verify(f"{header}.{payload}.{signature}", Keys(k1=KEY), EXPECTED, NOW) is None


def test_hmac_with_the_public_key_as_secret_is_refused() -> None:
    public_pem = KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    import hashlib
    import hmac

    signing_input = f"{b64(json.dumps({'alg': 'HS256', 'kid': 'k1'}).encode())}.{b64(json.dumps(claims()).encode())}"
    forged = f"{signing_input}.{b64(hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest())}"
    assert tokens.verify(forged, Keys(k1=KEY), EXPECTED, NOW) is None


def test_a_changed_payload_breaks_the_signature() -> None:
    header, _, signature = sign(claims()).split(".")
    other = base64.urlsafe_b64encode(json.dumps(claims(sub="someone-else")).encode()).rstrip(b"=").decode()
    assert tokens.verify(f"{header}.{other}.{signature}", Keys(k1=KEY), EXPECTED, NOW) is None


@pytest.mark.parametrize(
    "token",
    [
        "",
        "a.b",
        "a.b.c.d",
        "...",
        "eyJhbGciOiJSUzI1NiJ9.e30.",
        "!!!.???.***",
        sign(claims())[:-20],  # truncated
        sign(claims())[:40],
        "x" * (tokens.MAX_TOKEN_CHARS + 1),
        sign(claims(padding="x" * tokens.MAX_TOKEN_CHARS)),  # oversized, validly signed
        base64.urlsafe_b64encode(b"[1,2]").decode().rstrip("=") + ".e30.c2ln",
    ],
)
def test_malformed_tokens_are_refused_without_raising(token: str) -> None:
    assert tokens.verify(token, Keys(k1=KEY), EXPECTED, NOW) is None


@pytest.mark.parametrize(
    ("groups", "tenant"),
    [
        ([], "u-5f0c-sub"),
        (["tenant:acme"], "acme"),
        (["admins", "tenant:acme"], "acme"),
        (["tenant:acme", "tenant:globex"], None),
        (["tenant:bad#name"], None),
    ],
)
def test_the_tenant_comes_from_the_tokens_groups(groups: list[str], tenant: str | None) -> None:
    verified = tokens.verify(sign(claims(**{"cognito:groups": groups})), Keys(k1=KEY), EXPECTED, NOW)
    assert verified is not None
    assert tokens.tenant_of(verified) == tenant


def test_api_keys_are_not_mistaken_for_tokens() -> None:
    assert callers.looks_like_token(sign(claims()))
    for key in ("isk_abcdefghijklmnopqrstuvwxyz", "a.b.c-but-a-key-of-16", "key.with.dots.0123456789"):
        assert not callers.looks_like_token(key)


# -- the pool's key set, over HTTP --------------------------------------------------------------
class _Pool(BaseHTTPRequestHandler):
    jwks: dict[str, Any] = {}
    fetches = 0

    def do_GET(self) -> None:
        type(self).fetches += 1
        body = json.dumps(self.jwks).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture
def jwks_server() -> Iterator[tuple[str, type[_Pool]]]:
    handler = type("Pool", (_Pool,), {"jwks": {"keys": [_jwk(KEY, "k1")]}, "fetches": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/pool/.well-known/jwks.json", handler
    finally:
        server.shutdown()
        server.server_close()


def test_key_set_is_fetched_once_and_follows_a_rotation(jwks_server: tuple[str, type[_Pool]]) -> None:
    url, pool = jwks_server
    now = [1000.0]
    keys = userpool.KeySet(url, clock=lambda: now[0])
    assert tokens.verify(sign(claims()), keys, EXPECTED, NOW) is not None
    assert tokens.verify(sign(claims()), keys, EXPECTED, NOW) is not None
    assert pool.fetches == 1

    # The pool rotates: a new key signs, the old one is gone.
    pool.jwks = {"keys": [_jwk(OTHER_KEY, "k2")]}
    rotated = sign(claims(), key=OTHER_KEY, kid="k2")
    now[0] += userpool.REFETCH_SECONDS
    assert tokens.verify(rotated, keys, EXPECTED, NOW) is not None
    assert pool.fetches == 2


def test_unknown_key_ids_cannot_make_the_set_be_fetched_again_and_again(jwks_server: tuple[str, type[_Pool]]) -> None:
    url, pool = jwks_server
    keys = userpool.KeySet(url, clock=lambda: 1000.0)
    for n in range(20):
        assert tokens.verify(sign(claims(), kid=f"forged-{n}"), keys, EXPECTED, NOW) is None
    assert pool.fetches == 1


def test_entries_that_are_not_rsa_signing_keys_are_ignored() -> None:
    good = _jwk(KEY, "k1")
    document = {"keys": [{"kty": "EC", "kid": "e1"}, {**_jwk(OTHER_KEY, "k2"), "use": "enc"},
                         {**_jwk(OTHER_KEY, "k3"), "alg": "RS512"}, {"kty": "RSA", "kid": "k4", "n": "", "e": "AQAB"},
                         "junk", good]}
    keys = userpool.KeySet("http://127.0.0.1:9/", fetch=lambda url, body, headers: (200, json.dumps(document).encode()))
    assert keys.key("k1") is not None
    assert [keys.key(kid) for kid in ("e1", "k2", "k3", "k4")] == [None] * 4


@pytest.mark.parametrize("answer", [(500, b"{}"), (200, b"not json"), (404, b"")])
def test_a_key_set_that_cannot_be_read_is_an_outage_not_a_refusal(answer: tuple[int, bytes]) -> None:
    keys = userpool.KeySet("http://127.0.0.1:9/", fetch=lambda url, body, headers: answer)
    with pytest.raises(userpool.PoolUnavailable):
        keys.key("k1")


def test_an_unreachable_pool_is_an_outage() -> None:
    keys = userpool.KeySet("http://127.0.0.1:9/jwks.json")  # nothing listens on the discard port
    with pytest.raises(userpool.PoolUnavailable):
        keys.key("k1")


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ((200, b'{"Username": "x"}'), True),
        ((400, b'{"__type": "NotAuthorizedException", "message": "Access Token has been revoked"}'), False),
        ((400, b'{"__type": "com.amazonaws.cognito#UserNotFoundException"}'), False),
    ],
)
def test_the_pool_says_whether_a_token_is_still_honoured(answer: tuple[int, bytes], expected: bool) -> None:
    sent: list[tuple[str, bytes | None, dict[str, str]]] = []

    def fetch(url: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, bytes]:
        sent.append((url, body, headers))
        return answer

    assert userpool.signed_in("the-token", "us-east-1", fetch) is expected
    url, body, headers = sent[0]
    assert json.loads(body or b"") == {"AccessToken": "the-token"}
    assert headers["X-Amz-Target"] == "AWSCognitoIdentityProviderService.GetUser"


@pytest.mark.parametrize("answer", [(400, b'{"__type": "TooManyRequestsException"}'), (500, b""), (503, b"<html>")])
def test_a_throttled_or_failing_pool_is_an_outage(answer: tuple[int, bytes]) -> None:
    with pytest.raises(userpool.PoolUnavailable):
        userpool.signed_in("the-token", "us-east-1", lambda url, body, headers: answer)


def test_an_outage_of_the_pool_fails_the_authorizer(monkeypatch: pytest.MonkeyPatch) -> None:
    """API Gateway's AUTHORIZER_FAILURE (503, not cached), never a 401 for a valid person."""
    monkeypatch.setenv("USER_POOL_ID", "us-east-1_pool")
    monkeypatch.setenv("USER_POOL_CLIENT_ID", CLIENT)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_COGNITO_IDP", "http://127.0.0.1:9")
    with pytest.raises(AuthorizerUnavailable):
        callers.authenticate(f"Bearer {sign(claims())}", get_settings())


def test_a_stage_without_a_pool_refuses_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("USER_POOL_ID", raising=False)
    with pytest.raises(callers.Unauthorized):
        callers.authenticate(f"Bearer {sign(claims())}", get_settings())


@pytest.mark.parametrize("header", [None, "", "Basic dXNlcjpwYXNz", "Bearer", "Bearer   "])
def test_no_bearer_credential_is_unauthorized(header: str | None) -> None:
    with pytest.raises(callers.Unauthorized):
        callers.authenticate(header, get_settings())

