"""The local API gateway: serves the API definition ``chalice package`` generated, as API Gateway would.

From the package (``local/package.py``) it takes the routes and methods, which authorizer guards
which method (and whether an ``x-api-key`` is required), the authorizer's cache TTL, the CORS
preflight answers (the OPTIONS mock integrations) and the binary media types. API Gateway's own
answers (authorizer denials, unknown routes, failures) come from infra/gateway_responses.py,
the definition the deploy step puts on the REST API. Functions run in their own processes
(``local/lambdas.py``).

A request goes through the steps API Gateway takes for a REST API with Lambda proxy
integrations and a TOKEN authorizer:

1. match the path against the resources (a literal segment wins over a ``{parameter}``);
   none → ``MISSING_AUTHENTICATION_TOKEN``; a resource without the method → 405 with ``Allow``
   (where API Gateway answers ``MISSING_AUTHENTICATION_TOKEN``; see docs/LOCAL.md);
2. a mock integration (the CORS preflight) answers from its response parameters;
3. a method that requires an API key → ``INVALID_API_KEY``: no usage-plan keys exist locally, so
   such a method can never be called, which is the most the cloud would allow without one;
4. the authorizer: no token → ``UNAUTHORIZED``; else the authorizer function gets a TOKEN event
   with the request's ``methodArn`` and its policy is cached per token for the TTL; an error
   "Unauthorized" → ``UNAUTHORIZED``, any other failure → ``AUTHORIZER_FAILURE``, a malformed
   answer → ``AUTHORIZER_CONFIGURATION_ERROR``, a policy that does not allow this ``methodArn``
   → ``ACCESS_DENIED``;
5. the proxy integration: the API function gets the REST proxy event (with the authorizer's
   principal and context); a failed or malformed answer → ``DEFAULT_5XX``.

Every request body is read in full (or refused with ``REQUEST_TOO_LARGE`` and the connection
closed), so a keep-alive connection never mistakes a body for the next request.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl, quote, unquote_to_bytes

from infra import gateway_responses
from local.hosts import allowed, drain
from local.lambdas import FunctionError
from local.package import Package, function_of

REGION = "us-east-1"
ACCOUNT = "123456789012"
API_ID = "local"
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "upgrade"}
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")

Invoke = Callable[[str, dict[str, Any]], Any]
Answer = tuple[int, dict[str, str], bytes]


@dataclass(frozen=True)
class Authorizer:
    name: str
    function: str
    header: str
    ttl_seconds: int


@dataclass(frozen=True)
class Operation:
    method: str
    resource: str
    integration: str  # "aws_proxy" or "mock"
    function: str | None = None
    authorizer: Authorizer | None = None
    api_key_required: bool = False
    mock_status: int = 200
    mock_headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Resource:
    path: str
    segments: tuple[str, ...]
    operations: dict[str, Operation]

    def match(self, segments: list[str]) -> dict[str, str] | None:
        if len(segments) != len(self.segments):
            return None
        params: dict[str, str] = {}
        for pattern, segment in zip(self.segments, segments, strict=True):
            if pattern.startswith("{") and pattern.endswith("}"):
                if not segment:
                    return None
                params[pattern[1:-1]] = segment
            elif pattern != segment:
                return None
        return params

    @property
    def specificity(self) -> tuple[bool, ...]:
        return tuple(not s.startswith("{") for s in self.segments)

    def allow(self) -> str:
        return ", ".join(m for m in _METHODS if m in self.operations and m != "OPTIONS")


class ApiDefinition:
    """The routes of a Swagger 2.0 document with API Gateway's extensions."""

    def __init__(self, swagger: Mapping[str, Any]) -> None:
        definitions = swagger.get("securityDefinitions") or {}
        self.binary_types: list[str] = list(swagger.get("x-amazon-apigateway-binary-media-types") or [])
        self.resources: list[Resource] = []
        for path, methods in (swagger.get("paths") or {}).items():
            operations = {
                method.upper(): self._operation(method.upper(), path, spec, definitions)
                for method, spec in methods.items()
                if isinstance(spec, dict) and "x-amazon-apigateway-integration" in spec
            }
            segments = tuple(path.strip("/").split("/")) if path.strip("/") else ()
            self.resources.append(Resource(path, segments, operations))
        # API Gateway prefers literal path segments to parameters, left to right.
        self.resources.sort(key=lambda r: r.specificity, reverse=True)

    @staticmethod
    def _operation(method: str, path: str, spec: Mapping[str, Any], definitions: Mapping[str, Any]) -> Operation:
        integration = spec["x-amazon-apigateway-integration"]
        kind = str(integration.get("type", ""))
        authorizer = None
        api_key_required = False
        for requirement in spec.get("security") or []:
            for name in requirement:
                definition = definitions.get(name) or {}
                custom = definition.get("x-amazon-apigateway-authorizer")
                if definition.get("x-amazon-apigateway-authtype") == "custom" and custom:
                    if str(custom.get("type", "token")).lower() != "token":
                        raise ValueError(f"authorizer {name}: the local gateway runs TOKEN authorizers only")
                    authorizer = Authorizer(
                        name=name,
                        function=function_of(str(custom["authorizerUri"])),
                        header=str(definition.get("name", "Authorization")),
                        ttl_seconds=int(custom.get("authorizerResultTtlInSeconds", 300)),
                    )
                elif definition.get("type") == "apiKey":
                    api_key_required = True  # API Gateway's usage-plan key, ``x-api-key``
                else:
                    raise ValueError(f"security {name!r} on {method} {path}: not supported by the local gateway")
        if kind == "mock":
            response = (integration.get("responses") or {}).get("default") or {}
            headers = {
                name.removeprefix("method.response.header."): str(value).strip("'")
                for name, value in (response.get("responseParameters") or {}).items()
            }
            return Operation(method, path, "mock", mock_status=int(response.get("statusCode", 200)),
                             mock_headers=headers, authorizer=authorizer, api_key_required=api_key_required)
        if kind != "aws_proxy":
            raise ValueError(f"{method} {path}: integration {kind!r} is not supported by the local gateway")
        return Operation(method, path, kind, function=function_of(str(integration["uri"])),
                         authorizer=authorizer, api_key_required=api_key_required)

    def find(self, segments: list[str]) -> tuple[Resource, dict[str, str]] | None:
        for resource in self.resources:
            params = resource.match(segments)
            if params is not None:
                return resource, params
        return None

    def is_binary(self, content_type: str) -> bool:
        media = content_type.split(";", 1)[0].strip().lower()
        for pattern in self.binary_types:
            kind, _, sub = pattern.lower().partition("/")
            if media == pattern.lower() or (sub == "*" and media.split("/", 1)[0] == kind) or pattern == "*/*":
                return True
        return False


@dataclass
class _Cached:
    expires: float
    principal: str
    policy: dict[str, Any]
    context: dict[str, Any]


def _pattern(resource: str) -> re.Pattern[str]:
    return re.compile("^" + ".*".join(".".join(re.escape(p) for p in part.split("?")) for part in resource.split("*")) + "$")


def _listed(value: Any) -> list[str]:
    return [str(v) for v in (value if isinstance(value, list) else [value])]


def policy_allows(policy: Mapping[str, Any], method_arn: str) -> bool:
    """IAM evaluation of an authorizer's policy for ``execute-api:Invoke`` on ``method_arn``:
    an explicit Deny wins, else an Allow must match."""
    statements = policy.get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    allowed_here = False
    for statement in statements:
        if not isinstance(statement, dict):
            continue
        actions = _listed(statement.get("Action", []))
        if not any(_pattern(a.lower()).match("execute-api:invoke") for a in actions):
            continue
        if not any(_pattern(r).match(method_arn) for r in _listed(statement.get("Resource", []))):
            continue
        if statement.get("Effect") == "Deny":
            return False
        if statement.get("Effect") == "Allow":
            allowed_here = True
    return allowed_here


class Refusal(Exception):
    def __init__(self, response_type: str) -> None:
        super().__init__(response_type)
        self.response_type = response_type


class Gateway:
    """A WSGI application answering as the REST API of the package would."""

    def __init__(self, package: Package, invoke: Invoke, port: int, origin: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.definition = ApiDefinition(package.swagger)
        self.stage = package.api_stage
        self.invoke = invoke
        self.port = port
        self.origin = origin
        self.clock = clock
        self._cache: dict[tuple[str, str], _Cached] = {}
        self._cache_lock = threading.Lock()

    # -- answers ---------------------------------------------------------------------------
    def gateway_answer(self, response_type: str, request_id: str) -> Answer:
        return gateway_responses.render(response_type, request_id, self.origin)

    def refused_host(self, request_id: str) -> Answer:
        refusal = gateway_responses.GatewayResponse(
            "LOCAL_UNKNOWN_HOST", "forbidden", f"this server answers only to 127.0.0.1:{self.port} and localhost:{self.port}"
        )
        return refusal.status, refusal.headers(self.origin), json.dumps(refusal.document(request_id)).encode()

    def method_not_allowed(self, resource: Resource, method: str, request_id: str) -> Answer:
        allow = resource.allow()
        refusal = gateway_responses.GatewayResponse(
            "LOCAL_METHOD_NOT_ALLOWED", "method-not-allowed", f"{method} is not supported here; use {allow}"
        )
        headers = {**refusal.headers(self.origin), "Allow": allow}
        return refusal.status, headers, json.dumps(refusal.document(request_id)).encode()

    # -- WSGI ------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request_id = str(uuid.uuid4())
        close = False
        if not allowed(environ.get("HTTP_HOST"), self.port):
            close = not drain(environ)
            status, headers, body = self.refused_host(request_id)
        else:
            body_bytes = self._read_body(environ)
            if body_bytes is None:
                close = True
                status, headers, body = self.gateway_answer("REQUEST_TOO_LARGE", request_id)
            else:
                try:
                    status, headers, body = self.handle(environ, body_bytes, request_id)
                except Exception:  # a fault of this gateway: answered as API Gateway's 5xx, and logged
                    traceback.print_exc()
                    status, headers, body = self.gateway_answer("DEFAULT_5XX", request_id)
        headers = {**headers, "x-amzn-RequestId": request_id}
        if environ["REQUEST_METHOD"] == "HEAD":
            body = b""
        headers["Content-Length"] = str(len(body))
        if close:
            headers["Connection"] = "close"
        start_response(_status_line(status), list(headers.items()))
        return [body]

    @staticmethod
    def _read_body(environ: dict[str, Any]) -> bytes | None:
        from werkzeug.wsgi import get_input_stream

        declared = str(environ.get("CONTENT_LENGTH") or "0")
        if declared.isdigit() and int(declared) > MAX_PAYLOAD_BYTES:
            return None
        stream = get_input_stream(environ)  # empty without Content-Length or chunked encoding
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = stream.read(65536)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > MAX_PAYLOAD_BYTES:
                return None
            chunks.append(chunk)

    def handle(self, environ: dict[str, Any], body: bytes, request_id: str) -> Answer:
        method = environ["REQUEST_METHOD"].upper()
        segments = path_segments(environ)
        path = "/" + "/".join(segments)
        found = self.definition.find(segments)
        if found is None:
            return self.gateway_answer("MISSING_AUTHENTICATION_TOKEN", request_id)
        resource, params = found
        operation = resource.operations.get(method)
        if operation is None:
            return self.method_not_allowed(resource, method, request_id)
        try:
            if operation.api_key_required:
                raise Refusal("INVALID_API_KEY")
            authorized = self._authorize(operation, environ, method, path) if operation.authorizer else None
            if operation.integration == "mock":
                return operation.mock_status, {"Content-Type": "application/json", **operation.mock_headers}, b""
            event = self._event(environ, operation, path, params, body, request_id, authorized)
            assert operation.function is not None
            try:
                result = self.invoke(operation.function, event)
            except FunctionError as exc:
                print(f"[gateway] {method} {path}: {operation.function} failed: {exc}", flush=True)
                raise Refusal("DEFAULT_5XX") from exc
            return self._proxy_answer(result)
        except Refusal as refusal:
            return self.gateway_answer(refusal.response_type, request_id)

    # -- the authorizer --------------------------------------------------------------------
    def method_arn(self, method: str, path: str) -> str:
        return f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{API_ID}/{self.stage}/{method}/{path.lstrip('/')}"

    def _authorize(self, operation: Operation, environ: dict[str, Any], method: str, path: str) -> dict[str, Any]:
        authorizer = operation.authorizer
        assert authorizer is not None
        token = environ.get("HTTP_" + authorizer.header.upper().replace("-", "_"), "")
        if not token:
            raise Refusal("UNAUTHORIZED")
        arn = self.method_arn(method, path)
        key = (authorizer.name, token)
        now = self.clock()
        with self._cache_lock:
            cached = self._cache.get(key)
        if cached is None or cached.expires <= now:
            cached = self._run_authorizer(authorizer, token, arn)
            if authorizer.ttl_seconds > 0:
                with self._cache_lock:
                    self._cache[key] = cached
        if not policy_allows(cached.policy, arn):
            raise Refusal("ACCESS_DENIED")
        return {"principalId": cached.principal, **cached.context}

    def _run_authorizer(self, authorizer: Authorizer, token: str, arn: str) -> _Cached:
        event = {"type": "TOKEN", "authorizationToken": token, "methodArn": arn}
        try:
            result = self.invoke(authorizer.function, event)
        except FunctionError as exc:
            if exc.message == "Unauthorized":
                raise Refusal("UNAUTHORIZED") from exc
            print(f"[gateway] authorizer {authorizer.name} failed: {exc}", flush=True)
            raise Refusal("AUTHORIZER_FAILURE") from exc
        if not isinstance(result, dict) or not result.get("principalId") or not isinstance(result.get("policyDocument"), dict):
            raise Refusal("AUTHORIZER_CONFIGURATION_ERROR")
        context = result.get("context") or {}
        if not isinstance(context, dict) or any(isinstance(v, (dict, list)) for v in context.values()):
            raise Refusal("AUTHORIZER_CONFIGURATION_ERROR")  # API Gateway takes only primitive values
        return _Cached(self.clock() + authorizer.ttl_seconds, str(result["principalId"]), result["policyDocument"], context)

    # -- the proxy integration -------------------------------------------------------------
    def _event(self, environ: dict[str, Any], operation: Operation, path: str, params: dict[str, str],
               body: bytes, request_id: str, authorized: dict[str, Any] | None) -> dict[str, Any]:
        headers: dict[str, str] = {}
        multi_headers: dict[str, list[str]] = {}
        for name, value in _headers(environ):
            headers[name] = value
            multi_headers.setdefault(name, []).append(value)
        query: dict[str, str] = {}
        multi_query: dict[str, list[str]] = {}
        for name, value in parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True):
            query[name] = value
            multi_query.setdefault(name, []).append(value)
        binary = bool(body) and self.definition.is_binary(headers.get("Content-Type", ""))
        now = time.time()
        context: dict[str, Any] = {
            "resourceId": operation.resource,
            "resourcePath": operation.resource,
            "httpMethod": operation.method,
            "extendedRequestId": request_id,
            "requestTime": formatdate(now, usegmt=True),
            "path": f"/{self.stage}{path}",
            "accountId": ACCOUNT,
            "protocol": environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
            "stage": self.stage,
            "domainPrefix": "127",
            "requestTimeEpoch": int(now * 1000),
            "requestId": request_id,
            "identity": {"sourceIp": environ.get("REMOTE_ADDR", "127.0.0.1"), "userAgent": headers.get("User-Agent")},
            "domainName": environ.get("HTTP_HOST", ""),
            "apiId": API_ID,
        }
        if authorized is not None:
            context["authorizer"] = authorized
        return {
            "resource": operation.resource,
            "path": path,
            "httpMethod": operation.method,
            "headers": headers or None,
            "multiValueHeaders": multi_headers or None,
            "queryStringParameters": query or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": params or None,
            "stageVariables": None,
            "requestContext": context,
            "body": (base64.b64encode(body).decode() if binary else body.decode("utf-8", "replace")) if body else None,
            "isBase64Encoded": binary,
        }

    @staticmethod
    def _proxy_answer(result: Any) -> Answer:
        if not isinstance(result, dict) or not isinstance(result.get("statusCode"), int):
            raise Refusal("DEFAULT_5XX")  # API Gateway: "Malformed Lambda proxy response" (502)
        headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers[str(name)] = ", ".join(str(v) for v in values)
        headers = {k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP}
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"  # what API Gateway adds
        body = result.get("body") or ""
        if not isinstance(body, str):
            raise Refusal("DEFAULT_5XX")
        data = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
        return int(result["statusCode"]), headers, data


def path_segments(environ: Mapping[str, Any]) -> list[str]:
    """The request path's segments, each percent-decoded on its own: an encoded ``/`` (``%2F``)
    stays inside its segment, as API Gateway matches it."""
    target = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or quote(environ.get("PATH_INFO", "/")))
    raw = target.encode("latin-1", "replace")  # the request line's bytes (WSGI's encoding)
    if raw.startswith((b"http://", b"https://")):
        raw = b"/" + raw.split(b"/", 3)[3] if raw.count(b"/") >= 3 else b"/"
    raw_path = raw.split(b"?", 1)[0].strip(b"/")
    if not raw_path:
        return []
    return [unquote_to_bytes(part).decode("utf-8", "replace") for part in raw_path.split(b"/")]


def _headers(environ: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            yield key[5:].replace("_", "-").title(), str(value)
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            yield key.replace("_", "-").title(), str(value)


def _status_line(status: int) -> str:
    from http import HTTPStatus

    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"

