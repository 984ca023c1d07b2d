"""Contract checks that span the event features: documentation of routes, cost of item calls."""

from __future__ import annotations

import json
import re
from contextlib import contextmanager

from openapi_spec_validator import validate

from chalicelib.store import aws
from chalicelib.web import openapi


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def test_every_registered_route_is_documented(app_module):
    document = openapi.document()
    validate(document)
    documented = {
        (_shape(path), method.upper())
        for path, operations in document["paths"].items()
        for method in operations
        if method != "parameters"
    }
    registered = {
        (_shape(path), method)
        for path, methods in app_module.app.routes.items()
        for method in methods
        if method != "OPTIONS"
    }
    assert registered - documented == set()
    schemas = document["components"]["schemas"]
    assert {
        "Attachment",
        "AttachmentCreate",
        "AttachmentList",
        "Import",
        "ImportCreate",
        "ImportPage",
        "Upload",
    } <= set(schemas)


@contextmanager
def table_calls():
    """The DynamoDB operations made meanwhile, except the authorizer's API-key look-ups."""
    calls: list[str] = []

    def record(params, model, **_kwargs):
        key = params.get("Key") or {}
        if not str(key.get("pk", {}).get("S", "")).startswith("KEY#"):
            calls.append(model.name)

    events = aws.dynamodb().meta.events
    events.register("provide-client-params.dynamodb.*", record)
    try:
        yield calls
    finally:
        events.unregister("provide-client-params.dynamodb.*", record)


def test_item_calls_stay_single_round_trips_without_attachments(tenant):
    item = json.loads(tenant.request("POST", "/items", {"name": "cheap"}).body)
    path = f"/items/{item['id']}"
    for method, body in (("GET", None), ("PUT", {"name": "b"}), ("PATCH", {"description": "d"}), ("DELETE", None)):
        with table_calls() as calls:
            response = tenant.request(method, path, body)
        assert response.status_code in (200, 204), (method, response.body)
        assert len(calls) == 1, (method, calls)


def test_changing_tags_costs_a_read_and_one_transaction(tenant):
    """A tag's index record changes with the item (API.md "Finding items"), and which records to
    remove depends on the tags stored: learnt from a read, or from a failed condition's old item."""
    with table_calls() as calls:
        item = json.loads(tenant.request("POST", "/items", {"name": "tagged", "tags": ["a"]}).body)
    assert calls == ["TransactWriteItems"]
    path = f"/items/{item['id']}"
    for method, body, expected in (
        ("PUT", {"name": "b", "tags": ["a"]}, ["UpdateItem"]),
        ("PUT", {"name": "b", "tags": ["b"]}, ["UpdateItem", "TransactWriteItems"]),
        ("PATCH", {"tags": ["c"]}, ["GetItem", "TransactWriteItems"]),
        ("PATCH", {"name": "c"}, ["UpdateItem"]),
        ("DELETE", None, ["DeleteItem", "TransactWriteItems"]),
    ):
        with table_calls() as calls:
            response = tenant.request(method, path, body)
        assert response.status_code in (200, 204), (method, response.body)
        assert calls == expected, (method, body)


def test_deleting_an_item_with_attachments_costs_one_transaction_more(tenant):
    item = json.loads(tenant.request("POST", "/items", {"name": "with one"}).body)
    tenant.request(
        "POST", f"/items/{item['id']}/attachments", {"filename": "a.txt", "content_type": "text/plain", "size": 1}
    )
    with table_calls() as calls:
        assert tenant.request("GET", f"/items/{item['id']}").status_code == 200
    assert calls == ["GetItem"]
    with table_calls() as calls:
        assert tenant.request("DELETE", f"/items/{item['id']}").status_code == 204
    assert calls == ["DeleteItem", "TransactWriteItems"]
