"""The local stack serves the deployment artifacts, over real HTTP on loopback.

The gateway's answers are the ones the package's API definition and infra/gateway_responses.py
(what the deploy step puts on the REST API) give; every server answers only to its own names; a
request body never becomes the next request.
"""

from __future__ import annotations

import json
import re
import socket
from typing import Any

import pytest
import requests

from infra import gateway_responses
from local.package import parse
from tests.localstack import ROOT, RunningStack


def origin(stack: RunningStack) -> str:
    return stack.ui_url.rstrip("/")


def the_package(stack: RunningStack) -> dict[str, Any]:
    """The chalice.tf.json the stack says it serves."""
    match = re.search(r"\[stack\] package .*\((\w+)\)", stack.log())
    assert match, "the stack did not say which package it serves"
    return dict(json.loads((ROOT / ".local" / "package" / match.group(1) / "chalice.tf.json").read_text()))


def assert_gateway_answer(response: requests.Response, response_type: str, stack: RunningStack) -> None:
    status, headers, body = gateway_responses.render(response_type, response.headers["x-amzn-RequestId"], origin(stack))
    assert response.status_code == status
    assert {name: response.headers.get(name) for name in headers} == headers
    assert response.json() == json.loads(body)


def test_gateway_answers_are_the_deploy_steps_gateway_responses(local_stack):
    api = local_stack.api_url
    assert_gateway_answer(requests.get(f"{api}/items", timeout=10), "UNAUTHORIZED", local_stack)
    denied = requests.get(f"{api}/items", headers={"Authorization": "Bearer not-a-key-" + "x" * 30}, timeout=10)
    assert_gateway_answer(denied, "ACCESS_DENIED", local_stack)
    assert_gateway_answer(requests.get(f"{api}/nowhere/at/all", timeout=10), "MISSING_AUTHENTICATION_TOKEN", local_stack)
    too_large = local_stack.session("alpha").post(f"{api}/items", data=b"x" * (10 * 1024 * 1024 + 1),
                                                  headers={"Content-Type": "application/json"}, timeout=60)
    assert_gateway_answer(too_large, "REQUEST_TOO_LARGE", local_stack)


def test_routes_and_preflight_answers_are_the_packages(local_stack):
    package = the_package(local_stack)
    swagger = parse(package).swagger
    for path, methods in swagger["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "x1", path)
        mock = methods["options"]["x-amazon-apigateway-integration"]["responses"]["default"]
        wanted = {name.removeprefix("method.response.header."): value.strip("'")
                  for name, value in mock["responseParameters"].items()}
        preflight = requests.options(f"{local_stack.api_url}{concrete}", headers={
            "Origin": origin(local_stack), "Access-Control-Request-Method": "GET"}, timeout=10)
        assert preflight.status_code == int(mock["statusCode"])
        assert {name: preflight.headers.get(name) for name in wanted} == wanted
        assert wanted["Access-Control-Allow-Origin"] == origin(local_stack)
        for method, operation in methods.items():
            if method == "options":
                continue
            unauthenticated = requests.request(method.upper(), f"{local_stack.api_url}{concrete}", timeout=10)
            if operation.get("security"):
                assert_gateway_answer(unauthenticated, "UNAUTHORIZED", local_stack)
            else:
                assert unauthenticated.status_code == 200, (method, path)


def test_each_function_runs_with_its_packaged_configuration(local_stack):
    functions = the_package(local_stack)["resource"]["aws_lambda_function"]
    log = local_stack.log()
    for spec in functions.values():
        assert f"{spec['function_name']} ({spec['timeout']:g} s)" in log


@pytest.mark.parametrize("server", ["api", "front end", "emulator"])
def test_every_server_refuses_other_host_names(local_stack, server):
    emulator = re.search(r"emulator\s+(http://\S+)", local_stack.log())
    assert emulator
    url = {"api": f"{local_stack.api_url}/health", "front end": f"{local_stack.ui_url}config.js",
           "emulator": f"{emulator.group(1)}/"}[server]
    port = int(url.split(":")[2].split("/")[0])
    for host in ("attacker.example", f"attacker.example:{port}", f"127.0.0.1:{port + 1}", "localhost"):
        refused = requests.get(url, headers={"Host": host}, timeout=10)
        assert refused.status_code == 403, (server, host)
        assert local_stack.keys["alpha"] not in refused.text
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        assert requests.get(url, headers={"Host": host}, timeout=10).status_code == 200, (server, host)


def read_responses(sock: socket.socket, wait: float = 1.5) -> bytes:
    sock.settimeout(wait)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        pass
    return received


@pytest.mark.parametrize("method", ["QUERY", "POST", "TRACE"])
def test_a_request_body_never_becomes_the_next_request(local_stack, method):
    """A body that looks like a request stays a body: one request, one answer."""
    port = int(local_stack.api_url.rsplit(":", 1)[1])
    smuggled = f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    request = (f"{method} /imports HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(smuggled)}\r\n\r\n").encode() + smuggled
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        received = read_responses(sock)
    assert received.count(b"HTTP/1.1 ") == 1, received
    assert received.startswith(b"HTTP/1.1 4"), received


def test_chunked_bodies_are_read_in_full(local_stack):
    port = int(local_stack.api_url.rsplit(":", 1)[1])
    body = json.dumps({"name": "chunked"}).encode()
    key = local_stack.keys["alpha"]
    request = (f"POST /items HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n"
               "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    request += f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        received = read_responses(sock, wait=5)
    assert received.startswith(b"HTTP/1.1 201"), received
    assert received.count(b"HTTP/1.1 ") == 1


def test_presigned_uploads_go_to_the_emulator_by_its_own_name(local_stack):
    session = local_stack.session("alpha")
    item = session.post(f"{local_stack.api_url}/items", json={"name": "with a file"}, timeout=10).json()
    attachment = session.post(f"{local_stack.api_url}/items/{item['id']}/attachments",
                              json={"filename": "a.txt", "content_type": "text/plain", "size": 2}, timeout=10).json()
    upload = attachment["upload"]
    assert re.match(r"^http://(127\.0\.0\.1|localhost):\d+/", upload["url"])
    stored = requests.post(upload["url"], data=upload["fields"], files={"file": ("a.txt", b"hi", "text/plain")},
                           headers={"Origin": origin(local_stack)}, timeout=10)
    assert stored.status_code in (200, 201, 204), stored.text
