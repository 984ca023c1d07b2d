"""The OpenAPI 3.1 description, generated from the models that validate requests.

Paths and operations are declared here, schemas come from pydantic, so a rule changed in
``models.py`` changes the document too. A test fails when a route of the app is missing here.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic import BaseModel

from chalicelib import __version__
from chalicelib.models import Health, Item, ItemCreate, ItemPage, ItemPatch, ItemReplace, ProblemDocument
from chalicelib.upload_models import Attachment, AttachmentCreate, AttachmentList, Import, ImportCreate, ImportPage

_MODELS: list[type[BaseModel]] = [Health, Item, ItemCreate, ItemPage, ItemPatch, ItemReplace, ProblemDocument]
_MODELS += [Attachment, AttachmentCreate, AttachmentList, Import, ImportCreate, ImportPage]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/problem+json": {"schema": _ref("ProblemDocument")}}}


def _json(schema_name: str, description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": _ref(schema_name)}}}
    if headers:
        response["headers"] = headers
    return response


# What API Gateway (and ``chalice local``) answer themselves, e.g. ``{"message": "Unauthorized"}``.
GATEWAY_ERROR = {
    "type": "object",
    "properties": {"message": {"type": ["string", "null"]}, "Message": {"type": ["string", "null"]}},
}
_ETAG = {"ETag": {"description": "The item's version as a quoted entity tag", "schema": {"type": "string"}}}
_REQUEST_ID = {"X-Request-Id": {"description": "Identifies the request in logs", "schema": {"type": "string"}}}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "string"}}}

ITEM_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": "Replays the first response for 24 h; another body with the same key is refused.",
}
_TAG_LIST = (
    '"*" or a list of up to 50 entity tags (RFC 9110), e.g. "3" or W/"3", "4"; anything else is a 400.'
)
IF_MATCH = {"name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"},
            "description": _TAG_LIST + " Compared strongly: only the exact ETag matches."}
IF_NONE_MATCH = {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"},
                 "description": _TAG_LIST + " Compared weakly; a match is a 304."}


def common_errors(*statuses: int) -> dict[str, Any]:
    names = {
        400: "Malformed request",
        401: "Missing or invalid API key",
        403: "API key not allowed",
        404: "Not found (or another tenant's)",
        409: "Conflict",
        412: "If-Match does not match the current version",
        413: "Body over 64 KiB",
        415: "Body is not JSON",
        422: "Body fails validation",
        429: "Rate limited",
        500: "Internal error",
        503: "Temporarily unavailable",
    }
    responses = {str(status): _problem(names[status]) for status in statuses}
    for status in (401, 403):
        if str(status) in responses:
            # Denied by the gateway before the app runs: API Gateway's own JSON body, not ours.
            responses[str(status)]["content"]["application/json"] = {"schema": GATEWAY_ERROR}
    for status in (429, 503):
        if str(status) in responses:
            responses[str(status)]["headers"] = _RETRY_AFTER
    return responses


_AUTHED = (401, 403, 429, 500, 503)


def _paths() -> dict[str, Any]:
    item_body = {"required": True, "content": {"application/json": {"schema": _ref("ItemCreate")}}}
    return {
        "/health": {
            "get": {
                "operationId": "health",
                "security": [],
                "responses": {"200": _json("Health", "The service is up")},
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "security": [],
                "responses": {"200": {"description": "This document", "content": {"application/json": {}}}},
            }
        },
        "/items": {
            "post": {
                "operationId": "createItem",
                "parameters": [IDEMPOTENCY_KEY],
                "requestBody": item_body,
                "responses": {
                    "201": _json(
                        "Item",
                        "Created",
                        {**_ETAG, "Location": {"schema": {"type": "string"}}, "Idempotent-Replayed": {"schema": {"type": "string"}}},
                    ),
                    **common_errors(400, 409, 413, 415, 422, *_AUTHED),
                },
            },
            "get": {
                "operationId": "listItems",
                "parameters": [
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}},
                    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                    {"name": "order", "in": "query", "schema": {"type": "string", "enum": ["asc", "desc"], "default": "asc"}},
                ],
                "responses": {"200": _json("ItemPage", "A page of items, ordered by id"), **common_errors(400, *_AUTHED)},
            },
        },
        "/items/{id}": {
            "parameters": [ITEM_ID],
            "get": {
                "operationId": "getItem",
                "parameters": [IF_NONE_MATCH],
                "responses": {
                    "200": _json("Item", "The item", _ETAG),
                    "304": {"description": "Not modified"},
                    **common_errors(400, 404, *_AUTHED),
                },
            },
            "put": {
                "operationId": "replaceItem",
                "parameters": [IF_MATCH],
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("ItemReplace")}}},
                "responses": {
                    "200": _json("Item", "Replaced", _ETAG),
                    **common_errors(400, 404, 412, 413, 415, 422, *_AUTHED),
                },
            },
            "patch": {
                "operationId": "patchItem",
                "parameters": [IF_MATCH],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/merge-patch+json": {"schema": _ref("ItemPatch")},
                        "application/json": {"schema": _ref("ItemPatch")},
                    },
                },
                "responses": {
                    "200": _json("Item", "Patched", _ETAG),
                    **common_errors(400, 404, 409, 412, 413, 415, 422, *_AUTHED),
                },
            },
            "delete": {
                "operationId": "deleteItem",
                "parameters": [IF_MATCH],
                "responses": {"204": {"description": "Deleted"}, **common_errors(400, 404, 412, *_AUTHED)},
            },
        },
    }


_LOCATION = {"Location": {"schema": {"type": "string"}}, "Idempotent-Replayed": {"schema": {"type": "string"}}}
ATTACHMENT_ID = {"name": "attachment_id", "in": "path", "required": True, "schema": {"type": "string"}}
IMPORT_ID = {"name": "import_id", "in": "path", "required": True, "schema": {"type": "string"}}
_PAGING = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}},
    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
    {"name": "order", "in": "query", "schema": {"type": "string", "enum": ["asc", "desc"], "default": "asc"}},
]


def _body(schema_name: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(schema_name)}}}


def _event_paths() -> dict[str, Any]:
    """Attachments (files stored beside an item) and imports (bulk creation from a file)."""
    return {
        "/items/{id}/attachments": {
            "parameters": [ITEM_ID],
            "post": {
                "operationId": "createAttachment",
                "description": "Declares a file and returns a presigned form that uploads it directly to storage.",
                "parameters": [IDEMPOTENCY_KEY],
                "requestBody": _body("AttachmentCreate"),
                "responses": {
                    "201": _json("Attachment", "Created, pending its upload", _LOCATION),
                    **common_errors(400, 404, 409, 413, 415, 422, *_AUTHED),
                },
            },
            "get": {
                "operationId": "listAttachments",
                "responses": {"200": _json("AttachmentList", "The item's attachments"), **common_errors(404, *_AUTHED)},
            },
        },
        "/items/{id}/attachments/{attachment_id}": {
            "parameters": [ITEM_ID, ATTACHMENT_ID],
            "get": {
                "operationId": "getAttachment",
                "responses": {"200": _json("Attachment", "The attachment"), **common_errors(404, *_AUTHED)},
            },
            "delete": {
                "operationId": "deleteAttachment",
                "responses": {"204": {"description": "Deleted, with its file"}, **common_errors(404, *_AUTHED)},
            },
        },
        "/imports": {
            "post": {
                "operationId": "createImport",
                "description": "Declares a JSONL or CSV file of items and returns a presigned form to upload it.",
                "parameters": [IDEMPOTENCY_KEY],
                "requestBody": _body("ImportCreate"),
                "responses": {
                    "201": _json("Import", "Created, pending its upload", _LOCATION),
                    **common_errors(400, 409, 413, 415, 422, *_AUTHED),
                },
            },
            "get": {
                "operationId": "listImports",
                "parameters": _PAGING,
                "responses": {"200": _json("ImportPage", "A page of imports by id"), **common_errors(400, *_AUTHED)},
            },
        },
        "/imports/{import_id}": {
            "parameters": [IMPORT_ID],
            "get": {
                "operationId": "getImport",
                "responses": {"200": _json("Import", "The import and its progress"), **common_errors(404, *_AUTHED)},
            },
        },
    }


@functools.cache
def document() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in _MODELS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in schema.pop("$defs", {}).items():
            schemas.setdefault(name, definition)
        schemas[model.__name__] = schema
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Items service",
            "version": __version__,
            "description": "Multi-tenant items API. Errors are RFC 9457 problem documents.",
        },
        "servers": [{"url": "/"}],
        "security": [{"apiKey": []}],
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <api-key>"}},
            "schemas": schemas,
        },
        "paths": {**_paths(), **_event_paths()},
    }
