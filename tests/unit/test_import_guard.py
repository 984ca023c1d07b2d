"""Import-time guard: what a cold ``GET``, a cold ``POST`` and a cold authorizer invocation import.

The authorizer is run twice: with an API key, and with a person's access token (``token``), whose
path must not build an AWS client at all (the pool's key set and ``GetUser`` are plain HTTPS), nor
load a JWT library's X.509 and elliptic-curve weight (chalicelib/auth/tokens.py says why).

Each path runs in a fresh interpreter, through the Lambda entry points (``app.bearer_authorizer``,
``app.app``), against a tiny in-memory DynamoDB endpoint on 127.0.0.1 served by this test. The
child reports ``sys.modules`` after its answers, and the test checks

- families kept off a path by design: pydantic-core (validation is for requests with a body) and
  pydantic itself (even those validate with pydantic-core alone), the OpenAPI/schema modules,
  boto3 (the service talks to botocore directly), the local stack, the deploy tooling and the
  parts of Chalice that are not in a Lambda package;
- that the authorizer path does not import what only routes need;
- a budget on the number of modules, as a ratio to a bare botocore ``GetItem`` in the same
  interpreter (the floor any DynamoDB read pays), so new imports cannot pile up unnoticed.

Modules are named by family (a top-level package, or a component of a ``chalicelib`` module path),
not by exact path, so moving ``chalicelib`` modules into packages keeps the guard meaningful.
Timings stay in ``make bench`` (bench/compare.py), never in a test.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.localstack import ROOT

TABLE = "items-guard"
TENANT = "guard"
ITEM_ID = "01JGUARDGUARDGUARDGUARDGUAR"
API_KEY = "isk_import-guard-key-0123456789abcdef"

# Top-level packages no cold path of the service may import.
NEVER = {
    "boto3", "s3transfer",  # the service uses botocore directly: boto3's session layer is cold-start weight
    "moto", "werkzeug", "flask",  # the emulator
    "local", "infra", "tools", "tests", "bench",  # the local stack, deploy tooling: not in the Lambda package
    "fastapi", "starlette", "mangum", "aws_xray_sdk",  # the benchmark's peers
}
# Validation: only requests that carry a body need it.
VALIDATION = {"pydantic", "pydantic_core", "annotated_types", "typing_inspection", "email_validator"}
# Of which the item bodies need pydantic-core alone (chalicelib/items/rules.py): pydantic and its
# companions are for the OpenAPI document and the imports.
PYDANTIC = VALIDATION - {"pydantic_core"}
# chalicelib module families that no read needs, by a component of the module path.
NOT_FOR_READS = ("openapi", "models", "rules", "upload", "attachment", "import", "idempotency", "cleanup",
                 "dynamo_batch", "queue_batch")
# chalicelib module families that only routes need: the authorizer looks up a key and nothing else.
ROUTE_ONLY = ("item", "cursor", "conditional", "ratelimit", "http", "web", "ulid", "limits", "jsonutil")
# Powertools' parts built on pydantic or on a schema library.
POWERTOOLS_HEAVY = ("aws_lambda_powertools.event_handler", "aws_lambda_powertools.utilities.parser",
                    "aws_lambda_powertools.utilities.validation", "aws_lambda_powertools.utilities.idempotency")

# Module count of each path over the floor's (a fresh botocore GetItem, 333 modules on Python 3.11).
# Measured: authorizer 1.07 (357 modules), the authorizer with a token 0.63 (209: no AWS client), GET
# 1.24 (414: Powertools' Logger alone brings 40), POST 1.26 (419: the GET's, pydantic-core's three,
# chalicelib.items.rules, fractions and utf_8_sig; it was 471, 1.41, when the POST imported pydantic
# and built its models). The authorizer loads no route module: app.py imports those inside the
# routes. gc (the AWS client is built with the collector paused) adds one module to each path with a
# client. The bounds leave room for moving chalicelib into packages, not for another library.
BUDGET = {"auth": 1.08, "token": 0.65, "get": 1.26, "post": 1.28}
POOL = "us-east-1_guard"
CLIENT_ID = "guard-client"
# What only a JWT library, or an AWS client, would bring to the token path.
NOT_FOR_TOKENS = ("cryptography.x509", "cryptography.hazmat.primitives.asymmetric.ec", "jwt", "joserfc",
                  "botocore.client", "botocore.session", "botocore.endpoint")

CHILD = r"""
import json, os, sys
sys.path.insert(0, os.getcwd())
mode = sys.argv[1]
table, tenant, item_id, key = sys.argv[2:6]
context = type("Context", (), {"function_name": "items-dev", "memory_limit_in_mb": 512, "aws_request_id": "guard",
                               "invoked_function_arn": "arn:aws:lambda:us-east-1:123456789012:function:items-dev",
                               "get_remaining_time_in_millis": lambda self: 15000})()


def api(method, resource, path, params=None, body=None):
    return {"resource": resource, "path": path, "httpMethod": method,
            "headers": {"Content-Type": "application/json", "Host": "guard.local"}, "multiValueHeaders": {},
            "queryStringParameters": None, "multiValueQueryStringParameters": None, "pathParameters": params,
            "stageVariables": None, "body": body, "isBase64Encoded": False,
            "requestContext": {"resourcePath": resource, "httpMethod": method, "requestId": "guard-request",
                               "path": "/api" + path, "stage": "api", "identity": {"sourceIp": "127.0.0.1"},
                               "authorizer": {"principalId": tenant, "tenant": tenant, "key_id": "key_guard"}}}


answers = []
if mode == "floor":
    import botocore.session

    client = botocore.session.get_session().create_client("dynamodb")
    item = client.get_item(TableName=table, Key={"pk": {"S": "T#" + tenant}, "sk": {"S": "ITEM#" + item_id}})
    answers.append(200 if item.get("Item") else 404)
else:
    import app

    if mode in ("auth", "get", "token"):
        event = {"type": "TOKEN", "authorizationToken": "Bearer " + key,
                 "methodArn": "arn:aws:execute-api:us-east-1:123456789012:guard/api/GET/items/" + item_id}
        answer = app.bearer_authorizer(event, context)
        answers.append(answer["principalId"])
    if mode == "get":
        answers.append(app.app(api("GET", "/items/{item_id}", "/items/" + item_id, {"item_id": item_id}),
                               context)["statusCode"])
    if mode == "post":
        body = json.dumps({"name": "guard", "tags": ["a"], "data": {"n": 1}})
        answers.append(app.app(api("POST", "/items", "/items", body=body), context)["statusCode"])
print(json.dumps({"answers": answers, "modules": sorted(sys.modules)}))
"""


class FakeDynamoDB(BaseHTTPRequestHandler):
    """GetItem, PutItem and TransactWriteItems over a dict: just what the paths call; and the user
    pool's key set and ``GetUser`` for the token path."""

    items: dict[tuple[str, str], dict[str, Any]] = {}
    jwks: dict[str, Any] = {}

    def do_GET(self) -> None:
        self._answer(self.jwks if self.path == f"/{POOL}/.well-known/jwks.json" else {}, "application/json")

    def do_POST(self) -> None:
        operation = self.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        answer: dict[str, Any] = {}
        if operation == "GetUser":
            answer = {"Username": "guard-person", "UserAttributes": []}
        elif operation == "GetItem":
            key = request["Key"]
            found = self.items.get((key["pk"]["S"], key["sk"]["S"]))
            answer = {"Item": found} if found else {}
        elif operation == "PutItem":
            self._put(request["Item"])
        elif operation == "TransactWriteItems":
            for action in request["TransactItems"]:
                if "Put" in action:
                    self._put(action["Put"]["Item"])
        self._answer(answer, "application/x-amz-json-1.0")

    def _answer(self, answer: dict[str, Any], content_type: str) -> None:
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _put(self, item: dict[str, Any]) -> None:
        self.items[(item["pk"]["S"], item["sk"]["S"])] = item

    def log_message(self, *_args: Any) -> None:
        pass


def _person() -> tuple[dict[str, Any], str]:
    """A key set of one fresh RSA key, and an access token of ``POOL`` signed by it (PyJWT)."""
    import base64
    import time

    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = private.public_key().public_numbers()

    def b64(value: int) -> str:
        return base64.urlsafe_b64encode(value.to_bytes((value.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()

    now = int(time.time())
    claims = {"iss": f"https://cognito-idp.us-east-1.amazonaws.com/{POOL}", "sub": "guard-sub", "client_id": CLIENT_ID,
              "token_use": "access", "iat": now, "exp": now + 600, "cognito:groups": [f"tenant:{TENANT}"]}
    token = jwt.encode(claims, private, algorithm="RS256", headers={"kid": "guard-kid"})
    return {"keys": [{"kid": "guard-kid", "kty": "RSA", "alg": "RS256", "use": "sig", "n": b64(numbers.n),
                      "e": b64(numbers.e)}]}, token


@pytest.fixture(scope="module")
def paths() -> Iterator[dict[str, dict[str, Any]]]:
    FakeDynamoDB.jwks, token = _person()
    key_hash = hashlib.sha256(API_KEY.encode()).hexdigest()
    stamp = {"S": "2026-01-01T00:00:00.000Z"}
    FakeDynamoDB.items = {
        (f"KEY#{key_hash}", "KEY"): {"pk": {"S": f"KEY#{key_hash}"}, "sk": {"S": "KEY"}, "tenant": {"S": TENANT},
                                     "key_id": {"S": "key_guard"}, "key_hash": {"S": key_hash}, "created_at": stamp},
        (f"T#{TENANT}", f"ITEM#{ITEM_ID}"): {
            "pk": {"S": f"T#{TENANT}"}, "sk": {"S": f"ITEM#{ITEM_ID}"}, "id": {"S": ITEM_ID}, "name": {"S": "guard"},
            "tags": {"L": []}, "data": {"M": {"n": {"N": "1"}}}, "data_size": {"N": "7"}, "version": {"N": "1"},
            "created_at": stamp, "updated_at": stamp},
    }
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeDynamoDB)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TABLE_", "QUEUE_", "BUCKET_"))}
    env.update({
        "AWS_ACCESS_KEY_ID": "guard", "AWS_SECRET_ACCESS_KEY": "guard", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{server.server_address[1]}",
        "TABLE_NAME": TABLE, "CURSOR_SECRETS": "guard-secret", "STAGE": "guard", "LOG_LEVEL": "WARNING",
        "USER_POOL_ID": POOL, "USER_POOL_CLIENT_ID": CLIENT_ID,
    })
    results = {}
    try:
        for mode in ("floor", "auth", "token", "get", "post"):
            credential = token if mode == "token" else API_KEY
            done = subprocess.run([sys.executable, "-c", CHILD, mode, TABLE, TENANT, ITEM_ID, credential], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=120, check=False)
            assert done.returncode == 0, f"{mode}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
            results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        server.shutdown()
        server.server_close()
    yield results


def _top(modules: list[str], packages: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in packages)


def _chalicelib(modules: list[str], families: tuple[str, ...]) -> list[str]:
    """``chalicelib`` modules with a path component that starts with one of ``families``."""
    return sorted(m for m in modules if m.startswith("chalicelib.")
                  and any(part.startswith(families) for part in m.split(".")[1:]))


def test_every_path_answers(paths: dict[str, dict[str, Any]]) -> None:
    assert paths["floor"]["answers"] == [200]
    assert paths["auth"]["answers"] == [TENANT]
    assert paths["token"]["answers"] == [TENANT]
    assert paths["get"]["answers"] == [TENANT, 200]
    assert paths["post"]["answers"] == [201]


@pytest.mark.parametrize("mode", ["auth", "token", "get", "post"])
def test_no_path_imports_what_the_lambda_package_lacks_or_the_service_avoids(paths, mode) -> None:
    modules = paths[mode]["modules"]
    assert _top(modules, NEVER) == []
    # A Lambda package carries chalice/__init__.py and chalice/app.py only.
    assert sorted(m for m in modules if m.startswith("chalice.") and m != "chalice.app") == []
    assert sorted(m for m in modules if m.startswith(POWERTOOLS_HEAVY)) == []
    assert _chalicelib(modules, ("openapi",)) == []


@pytest.mark.parametrize("mode", ["auth", "token", "get"])
def test_reads_import_no_validation_library_and_no_write_only_module(paths, mode) -> None:
    modules = paths[mode]["modules"]
    assert _top(modules, VALIDATION) == []
    assert _chalicelib(modules, NOT_FOR_READS) == []


def test_the_post_path_validates_with_pydantic_core_alone(paths) -> None:
    """No pydantic, no models; and the other side of the read guard: if the last two asserts fail,
    the guard above checks families nobody imports."""
    modules = paths["post"]["modules"]
    assert _top(modules, PYDANTIC) == []
    assert _chalicelib(modules, ("models", "openapi")) == []
    assert "pydantic_core" in modules
    assert _chalicelib(modules, ("rules",))


def test_the_authorizer_imports_nothing_only_routes_need(paths) -> None:
    assert _chalicelib(paths["auth"]["modules"], ROUTE_ONLY) == []


@pytest.mark.parametrize("mode", ["auth", "token", "get", "post"])
def test_module_count_stays_within_its_ratio_to_the_floor(paths, mode) -> None:
    floor = len(paths["floor"]["modules"])
    count = len(paths[mode]["modules"])
    added = sorted(set(paths[mode]["modules"]) - set(paths["floor"]["modules"]))
    assert count / floor <= BUDGET[mode], f"{mode}: {count} modules, {count / floor:.2f}× the floor's {floor}; beyond it: {added}"


def test_the_authorizer_imports_no_more_than_a_read(paths) -> None:
    assert len(paths["auth"]["modules"]) <= len(paths["get"]["modules"])


def test_the_token_path_builds_no_aws_client_and_loads_no_jwt_library(paths) -> None:
    modules = paths["token"]["modules"]
    assert sorted(m for m in modules if m.startswith(NOT_FOR_TOKENS)) == []
    # The other side: the key path does build a client, so the names above are the right ones.
    assert "botocore.client" in paths["auth"]["modules"]
    assert "chalicelib.auth.tokens" not in paths["auth"]["modules"]
