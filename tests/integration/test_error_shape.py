"""One error format, whoever answers: the gateway's refusals and the application's errors, over HTTP.

A client parses one shape (API.md "Conventions"): each answer below is ``application/problem+json``,
valid against the served document's ``ProblemDocument``, with ``status`` equal to the HTTP status
and a ``type`` naming that status's slug; gateway and application answers have the same keys.
"""

from __future__ import annotations

from typing import Any

import requests
from jsonschema import Draft202012Validator

from chalicelib.problems import PROBLEM_TYPES


def problem_of(response: requests.Response, document: dict[str, Any]) -> dict[str, Any]:
    assert response.headers["Content-Type"].startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    schema = {"$ref": "#/components/schemas/ProblemDocument", "components": document["components"]}
    errors = [e.message for e in Draft202012Validator(schema).iter_errors(body)]
    assert not errors, (response.status_code, body, errors)
    slug = body["type"].removeprefix("/problems/")
    assert body["status"] == response.status_code == PROBLEM_TYPES[slug][0]
    return body


def test_gateway_and_application_errors_have_the_same_shape(local_stack):
    api = local_stack.api_url
    document = requests.get(f"{api}/openapi.json", timeout=10).json()
    alpha = local_stack.session("alpha")
    gateway = {
        401: requests.get(f"{api}/items", timeout=10),
        403: requests.get(f"{api}/items", headers={"Authorization": "Bearer not-a-key-" + "x" * 30}, timeout=10),
        404: requests.get(f"{api}/nowhere/at/all", timeout=10),
    }
    application = {
        400: alpha.get(f"{api}/items", params={"limit": "0"}, timeout=10),
        404: alpha.get(f"{api}/items/missing-item", timeout=10),
        415: alpha.post(f"{api}/items", data="name=x", headers={"Content-Type": "text/plain"}, timeout=10),
        422: alpha.post(f"{api}/items", json={"name": " "}, timeout=10),
    }
    shapes = set()
    for answers in (gateway, application):
        for status, response in answers.items():
            assert response.status_code == status, (status, response.text)
            body = problem_of(response, document)
            shapes.add(frozenset(body) - {"errors"})
    assert shapes == {frozenset({"type", "title", "status", "detail", "request_id"})}
