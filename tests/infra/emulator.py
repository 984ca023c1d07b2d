"""An AWS emulator on loopback for whole deploys: moto's server, behind a small shim.

The deploy command runs as its own process, as an operator runs it, with ``AWS_ENDPOINT_URL``
pointing here. Requests go to moto's server unchanged, except where moto lacks a behaviour of
AWS the deploy relies on. Each shim below names the AWS documentation it stands in for, and
uses only moto's public API (its HTTP endpoints, through boto3):

- ``ImportRestApi`` and ``PutRestApi`` with a Swagger 2.0 definition. moto imports only
  OpenAPI 3 and ignores security definitions; API Gateway imports Swagger 2.0 with its
  extensions, including Lambda authorizers bound per method
  (https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-import-api.html,
  https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-swagger-extensions-authorizer.html,
  https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-swagger-extensions-authtype.html,
  https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-swagger-extensions-integration.html,
  ``mode=overwrite``: https://docs.aws.amazon.com/apigateway/latest/api/API_PutRestApi.html).
  A security entry without ``x-amazon-apigateway-authtype`` is an API key requirement
  (https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-key-source.html):
  the method gets ``apiKeyRequired``. Overwriting replaces the whole definition, gateway
  responses included (they are part of it:
  https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-swagger-extensions-gateway-responses.html),
  so customised ones go back to their defaults until set again.
- ``PutBucketNotificationConfiguration`` with a filter rule named ``Prefix``/``Suffix``. S3
  takes the rule names case-insensitively (Chalice sends them capitalised, and S3 answers them so
  in ``GetBucketNotificationConfiguration``); moto accepts only lower case
  (https://docs.aws.amazon.com/AmazonS3/latest/API/API_FilterRule.html,
  https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-how-to-filtering.html).
- ``CreateDeployment`` naming an existing stage. API Gateway points the stage at the new
  deployment and keeps the stage's settings (its method settings, such as throttling); moto
  replaces the stage with a fresh one
  (https://docs.aws.amazon.com/apigateway/latest/api/API_CreateDeployment.html,
  https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-deployments.html).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import requests

HOST = "127.0.0.1"
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "server", "date"}
_REST_API = re.compile(r"^/restapis/([^/]+)$")
_DEPLOYMENTS = re.compile(r"^/restapis/([^/]+)/deployments$")
_METHOD_SETTINGS = {"throttlingRateLimit": "throttling/rateLimit", "throttlingBurstLimit": "throttling/burstLimit",
                    "metricsEnabled": "metrics/enabled", "loggingLevel": "logging/loglevel",
                    "dataTraceEnabled": "logging/dataTrace"}
_REGION = re.compile(r"Credential=[^/]+/\d+/([^/]+)/")


class Emulator:
    def __init__(self, moto_url: str, url: str) -> None:
        self.moto_url = moto_url
        self.url = url

    def client(self, service: str, region: str = "us-east-1") -> Any:
        return boto3.client(service, endpoint_url=self.moto_url, region_name=region, aws_access_key_id="testing",
                            aws_secret_access_key="testing")  # noqa: S106


@contextmanager
def running() -> Iterator[Emulator]:
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address=HOST, port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    moto_url = f"http://{host}:{port}"
    handler = type("ShimHandler", (_ShimHandler,), {"moto_url": moto_url})
    shim = ThreadingHTTPServer((HOST, 0), handler)
    shim.daemon_threads = True
    thread = threading.Thread(target=shim.serve_forever, daemon=True)
    thread.start()
    try:
        yield Emulator(moto_url, f"http://{HOST}:{shim.server_address[1]}")
    finally:
        shim.shutdown()
        shim.server_close()
        moto.stop()


class _ShimHandler(BaseHTTPRequestHandler):
    moto_url = ""
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        target = _REST_API.match(parts.path)
        is_apigateway = "/apigateway/" in self.headers.get("Authorization", "")
        if is_apigateway and self.command == "POST" and parts.path == "/restapis" and query.get("mode") == ["import"]:
            rest_api_id = import_swagger(self._apigateway(), json.loads(body), None, _endpoint_types(query))
            self._forward("GET", f"/restapis/{rest_api_id}", b"", status=201)
        elif is_apigateway and self.command == "PUT" and target and query.get("mode", ["merge"]) == ["overwrite"]:
            import_swagger(self._apigateway(), json.loads(body), target.group(1), None)
            self._forward("GET", f"/restapis/{target.group(1)}", b"")
        elif is_apigateway and self.command == "POST" and _DEPLOYMENTS.match(parts.path):
            self._create_deployment(_DEPLOYMENTS.match(parts.path).group(1), body)  # type: ignore[union-attr]
        elif self.command == "PUT" and "notification" in query and "/s3/" in self.headers.get("Authorization", ""):
            body = re.sub(rb"<Name>(Prefix|Suffix)</Name>", lambda m: b"<Name>" + m.group(1).lower() + b"</Name>", body)
            self._forward(self.command, self.path, body)
        else:
            self._forward(self.command, self.path, body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

    def _create_deployment(self, rest_api_id: str, body: bytes) -> None:
        client = self._apigateway()
        stage = json.loads(body or b"{}").get("stageName")
        settings: dict[str, Any] = {}
        if stage:
            try:
                settings = client.get_stage(restApiId=rest_api_id, stageName=stage).get("methodSettings", {})
            except client.exceptions.NotFoundException:
                settings = {}
        self._forward("POST", self.path, body)
        operations = [
            {"op": "replace", "path": f"/{key}/{_METHOD_SETTINGS[name]}", "value": str(value).lower()
             if isinstance(value, bool) else str(value)}
            for key, values in settings.items() for name, value in values.items() if name in _METHOD_SETTINGS
        ]
        if operations:
            client.update_stage(restApiId=rest_api_id, stageName=stage, patchOperations=operations)

    def _apigateway(self) -> Any:
        match = _REGION.search(self.headers.get("Authorization", ""))
        return boto3.client("apigateway", endpoint_url=self.moto_url, region_name=match.group(1) if match else "us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")  # noqa: S106

    def _forward(self, method: str, path: str, body: bytes, status: int | None = None) -> None:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        if method == "GET" and not body:
            headers.pop("Content-Type", None)
        answer = requests.request(method, self.moto_url + path, data=body, headers=headers, timeout=300,
                                  allow_redirects=False)
        payload = answer.content
        self.send_response(status or answer.status_code)
        for name, value in answer.headers.items():
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(payload)


def _endpoint_types(query: dict[str, list[str]]) -> list[str]:
    types = query.get("parameters[endpointConfigurationTypes]") or query.get("endpointConfigurationTypes") or ["EDGE"]
    return types[0].split(",")


def import_swagger(client: Any, doc: dict[str, Any], rest_api_id: str | None, endpoint_types: list[str] | None) -> str:
    """API Gateway's import of a Swagger 2.0 definition (create, or overwrite ``rest_api_id``)."""
    if rest_api_id is None:
        created = client.create_rest_api(name=doc["info"]["title"], endpointConfiguration={"types": endpoint_types or ["EDGE"]})
        rest_api_id = str(created["id"])
    else:
        resources = client.get_resources(restApiId=rest_api_id, limit=500)["items"]
        for resource in sorted(resources, key=lambda r: -r["path"].count("/")):
            if resource["path"] != "/":
                client.delete_resource(restApiId=rest_api_id, resourceId=resource["id"])
        for authorizer in client.get_authorizers(restApiId=rest_api_id).get("items", []):
            client.delete_authorizer(restApiId=rest_api_id, authorizerId=authorizer["id"])
        for response in client.get_gateway_responses(restApiId=rest_api_id).get("items", []):
            client.delete_gateway_response(restApiId=rest_api_id, responseType=response["responseType"])
    if doc.get("x-amazon-apigateway-binary-media-types"):
        client.update_rest_api(restApiId=rest_api_id, patchOperations=[
            {"op": "add", "path": f"/binaryMediaTypes/{media.replace('/', '~1')}"}
            for media in doc["x-amazon-apigateway-binary-media-types"]
        ])
    authorizers: dict[str, str] = {}
    api_keys: set[str] = set()
    for name, definition in doc.get("securityDefinitions", {}).items():
        extension = definition.get("x-amazon-apigateway-authorizer")
        if definition.get("x-amazon-apigateway-authtype") == "custom" and extension:
            created = client.create_authorizer(
                restApiId=rest_api_id,
                name=name,
                type=extension["type"].upper(),
                authorizerUri=extension["authorizerUri"],
                identitySource=f"method.request.header.{definition['name']}",
                authorizerResultTtlInSeconds=int(extension.get("authorizerResultTtlInSeconds", 300)),
            )
            authorizers[name] = created["id"]
        elif definition.get("type") == "apiKey":
            api_keys.add(name)
    paths = {"/": client.get_resources(restApiId=rest_api_id)["items"][0]["id"]}
    for resource in client.get_resources(restApiId=rest_api_id, limit=500)["items"]:
        paths[resource["path"]] = resource["id"]
    for path in sorted(doc.get("paths", {})):
        parent = "/"
        for segment in [s for s in path.split("/") if s]:
            child = f"{parent.rstrip('/')}/{segment}"
            if child not in paths:
                paths[child] = client.create_resource(restApiId=rest_api_id, parentId=paths[parent], pathPart=segment)["id"]
            parent = child
        for method, operation in doc["paths"][path].items():
            names = [name for requirement in operation.get("security", doc.get("security", [])) for name in requirement]
            custom = [authorizers[name] for name in names if name in authorizers]
            extra = {"authorizerId": custom[0]} if custom else {}
            client.put_method(restApiId=rest_api_id, resourceId=paths[path], httpMethod=method.upper(),
                              authorizationType="CUSTOM" if custom else "NONE",
                              apiKeyRequired=any(name in api_keys for name in names), **extra)
            integration = operation.get("x-amazon-apigateway-integration")
            if integration:
                arguments = {"type": integration["type"].upper()}
                if integration.get("uri"):
                    arguments["uri"] = integration["uri"]
                if integration.get("httpMethod"):
                    arguments["integrationHttpMethod"] = integration["httpMethod"]
                if integration.get("requestTemplates"):
                    arguments["requestTemplates"] = integration["requestTemplates"]
                client.put_integration(restApiId=rest_api_id, resourceId=paths[path], httpMethod=method.upper(),
                                       **arguments)
    return rest_api_id
