"""The OpenAPI 3.1 description, generated from the models made of the rules that validate requests.

Paths and operations are declared here, schemas come from pydantic, so a rule changed in
``rules.py`` (or a field in ``models.py``) changes the document too. A test fails when a route of the app is missing here, and
tests/unit/test_openapi.py checks that each declared rule is the one the validators apply.
The size maxima are stage settings (checked by the services, not the models): they are read from
the stage's settings when the document is built.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic import BaseModel

from chalicelib import __version__
from chalicelib.attachments.models import Attachment, AttachmentCreate, AttachmentList, Import, ImportCreate, ImportPage
from chalicelib.config.settings import get_settings
from chalicelib.items.models import Health, Item, ItemCreate, ItemPage, ItemPatch, ItemReplace, ProblemDocument
from chalicelib.limits import ID_PATTERN, MAX_PREFIX_LENGTH, MAX_TAG_LENGTH
from chalicelib.problems import PROBLEM_TYPES

_MODELS: list[type[BaseModel]] = [Health, Item, ItemCreate, ItemPage, ItemPatch, ItemReplace, ProblemDocument]
_MODELS += [Attachment, AttachmentCreate, AttachmentList, Import, ImportCreate, ImportPage]

PROBLEM = "application/problem+json"
MERGE_PATCH = "application/merge-patch+json"
# http.idempotency_key's rule: 1-255 printable ASCII characters.
IDEMPOTENCY_KEY_PATTERN = "^[ -~]{1,255}$"
# RFC 9110: "*" or a comma-separated list of at least one entity tag ([W/]"<etagc>*"), empty
# elements allowed; chalicelib/web/conditional.py parses exactly this (at most 50 tags).
_ENTITY_TAG = r'(W/)?"[\u0021\u0023-\u007e\u0080-\uffff]*"'
ENTITY_TAG_LIST_PATTERN = rf"^[ \t]*(\*|(,[ \t]*)*{_ENTITY_TAG}([ \t]*,([ \t]*{_ENTITY_TAG})?)*)[ \t]*$"

TAGS = [
    {"name": "items", "description": "Items: create, read, replace, merge-patch, delete and list."},
    {"name": "attachments", "description": "Files stored beside an item, uploaded directly to storage."},
    {"name": "imports", "description": "Bulk creation of items from a JSONL or CSV file."},
    {"name": "service", "description": "Health and this description."},
]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _header(description: str, schema: dict[str, Any], required: bool = False) -> dict[str, Any]:
    header: dict[str, Any] = {"description": description, "schema": schema}
    if required:
        header["required"] = True
    return header


def _request_id(required: bool) -> dict[str, Any]:
    return {"X-Request-Id": _header("Identifies the request in logs; quote it when reporting a problem.",
                                    {"type": "string"}, required)}


ETAG = _header('The item\'s version as a strong entity tag, e.g. "3".', {"type": "string", "pattern": '^"[1-9][0-9]*"$'},
               required=True)
RETRY_AFTER = _header("Seconds to wait before retrying.", {"type": "integer", "minimum": 0}, required=True)
REPLAYED = _header("Present when this is the stored answer of an earlier request with the same Idempotency-Key.",
                   {"type": "string", "enum": ["true"]})


def _location(path: str) -> dict[str, Any]:
    return _header(f"The created resource, {path}.", {"type": "string", "format": "uri-reference"}, required=True)


# Who answers: the application adds X-Request-Id to every response it produces; API Gateway's own
# answers (401, 403, 404 for unknown paths, 503 for authorizer failures) carry it only in the body.
_GATEWAY_MAY_ANSWER = {401, 403, 404, 503}

_ERROR_DESCRIPTIONS = {
    400: "Malformed request: bad JSON, query parameter, header or cursor (`bad-request`).",
    401: "Missing or invalid API key (`unauthorized`).",
    403: "API key not allowed (`forbidden`).",
    404: "Not found, or another tenant's (`not-found`).",
    409: "Conflict with the current state (`conflict`).",
    412: "If-Match does not match the current version (`precondition-failed`); ETag is the current one.",
    413: "Body over 64 KiB (`payload-too-large`).",
    415: "Body is not JSON (`unsupported-media-type`).",
    422: "Body fails validation (`validation-error`), or Idempotency-Key reused with another body "
         "(`idempotency-key-reused`).",
    429: "Rate limited (`rate-limited`).",
    500: "Internal error, always a bug (`internal-error`).",
    503: "Temporarily unavailable (`service-unavailable`); the request had no effect or completed fully.",
}


def _problem_example(status: int) -> dict[str, Any]:
    slug = next(s for s, (code, _) in PROBLEM_TYPES.items() if code == status)
    example: dict[str, Any] = {"type": f"/problems/{slug}", "title": PROBLEM_TYPES[slug][1], "status": status,
                               "detail": PROBLEM_TYPES[slug][1], "request_id": "c0a8016e-5f3b-4c1d-9e2a-7b6d5c4e3f21"}
    if status == 422:
        example["detail"] = "1 field is invalid"
        example["errors"] = [{"pointer": "/name", "detail": "must not be blank"}]
    return example


def _error(status: int) -> dict[str, Any]:
    headers = _request_id(required=status not in _GATEWAY_MAY_ANSWER)
    if status in (429, 503):
        headers["Retry-After"] = RETRY_AFTER
    if status == 409:
        headers["Retry-After"] = {**RETRY_AFTER, "required": False}
    if status == 412:
        headers["ETag"] = ETAG
    return {
        "description": _ERROR_DESCRIPTIONS[status],
        "headers": headers,
        "content": {PROBLEM: {"schema": _ref("ProblemDocument"), "example": _problem_example(status)}},
    }


def errors(*statuses: int) -> dict[str, Any]:
    return {str(status): _error(status) for status in sorted(statuses)}


_AUTHED = (401, 403, 429, 500, 503)
_BODY_ERRORS = (400, 413, 415, 422)


def _ok(schema_name: str, description: str, example: Any, headers: dict[str, Any] | None = None,
        links: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "headers": {**_request_id(True), **(headers or {})},
        "content": {"application/json": {"schema": _ref(schema_name), "example": example}},
    }
    if links:
        response["links"] = links
    return response


def _empty(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "headers": {**_request_id(True), **(headers or {})}}


def _body(schema_name: str, example: Any, media_type: str = "application/json") -> dict[str, Any]:
    return {"required": True, "content": {media_type: {"schema": _ref(schema_name), "example": example}}}


ITEM_ID = {"name": "id", "in": "path", "required": True, "description": "The item's id.",
           "schema": {"type": "string", "pattern": ID_PATTERN}, "example": "01JD2Q6J9G8V3M4N5P6Q7R8S9T"}
ATTACHMENT_ID = {"name": "attachment_id", "in": "path", "required": True, "description": "The attachment's id.",
                 "schema": {"type": "string"}, "example": "01JD2Q8A1B2C3D4E5F6G7H8J9K"}
IMPORT_ID = {"name": "import_id", "in": "path", "required": True, "description": "The import's id.",
             "schema": {"type": "string"}, "example": "01JD2Q9M1N2P3Q4R5S6T7V8W9X"}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": IDEMPOTENCY_KEY_PATTERN},
    "description": "1-255 printable ASCII characters. Replays the first response for 24 h (with "
                   "Idempotent-Replayed: true); another body with the same key is a 422, the same key while "
                   "the first request runs a 409.",
}
_TAG_LIST = '"*" or a list of up to 50 entity tags (RFC 9110), e.g. "3" or W/"3", "4"; anything else is a 400.'
IF_MATCH = {"name": "If-Match", "in": "header", "required": False,
            "schema": {"type": "string", "pattern": ENTITY_TAG_LIST_PATTERN},
            "description": _TAG_LIST + " Compared strongly: only the exact ETag matches, otherwise 412."}
IF_NONE_MATCH = {"name": "If-None-Match", "in": "header", "required": False,
                 "schema": {"type": "string", "pattern": ENTITY_TAG_LIST_PATTERN},
                 "description": _TAG_LIST + " Compared weakly; a match is a 304."}
PAGING = [
    {"name": "limit", "in": "query", "required": False, "description": "Page size, 1-100 (ASCII digits).",
     "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}},
    {"name": "cursor", "in": "query", "required": False,
     "description": "The previous page's next_cursor; bound to the tenant and order.", "schema": {"type": "string"}},
    {"name": "order", "in": "query", "required": False, "description": "By id, ascending (default) or descending.",
     "schema": {"type": "string", "enum": ["asc", "desc"], "default": "asc"}},
]
_SORTS = ["id", "name", "updated_at"]
FINDING = [
    {"name": "tag", "in": "query", "required": False,
     "description": (f"Only items carrying this tag (trimmed, as on write; 1-{MAX_TAG_LENGTH} characters), by id. "
                     "Not with q, nor with a sort other than id (400)."),
     "schema": {"type": "string", "minLength": 1, "maxLength": MAX_TAG_LENGTH}},
    {"name": "q", "in": "query", "required": False,
     "description": (f"Only items whose name starts with this text, compared case-insensitively (Unicode case folding), "
                     f"1-{MAX_PREFIX_LENGTH} characters; ordered by name, then id. Not with tag, nor with a sort other "
                     "than name (400)."),
     "schema": {"type": "string", "minLength": 1, "maxLength": MAX_PREFIX_LENGTH}},
    {"name": "sort", "in": "query", "required": False,
     # No schema default: a client that filled one in would send sort=id with q, which is refused.
     "description": ("The order: id (when absent, unless q is given: then name), name (case-folded, then id) "
                     "or updated_at (then id; order=desc puts recent changes first)."),
     "schema": {"type": "string", "enum": _SORTS}},
]
ITEM_PAGING = [
    *FINDING,
    *[{**p, "description": "The previous page's next_cursor; bound to the tenant, the query (tag, q, sort) and order."}
      if p["name"] == "cursor" else
      {**p, "description": "Ascending (default) or descending, in the order sort (or tag, q) gives."}
      if p["name"] == "order" else p for p in PAGING],
]

_TIME = "2026-11-24T03:41:05.123Z"
ITEM_EXAMPLE = {"id": "01JD2Q6J9G8V3M4N5P6Q7R8S9T", "name": "Receipt", "description": None, "tags": ["travel"],
                "data": {"amount": 12.5, "currency": "EUR"}, "expires_at": None, "version": 1,
                "created_at": _TIME, "updated_at": _TIME}
_UPLOAD_EXAMPLE = {"method": "POST", "url": "https://bucket.s3.amazonaws.com/",
                   "fields": {"key": "uploads/01JD2Q8A1B2C3D4E5F6G7H8J9K", "policy": "eyJ…"},
                   "expires_at": "2026-11-24T04:41:05.123Z"}
ATTACHMENT_EXAMPLE = {"id": "01JD2Q8A1B2C3D4E5F6G7H8J9K", "item_id": ITEM_EXAMPLE["id"], "filename": "receipt.pdf",
                      "content_type": "application/pdf", "size": 48213, "status": "pending",
                      "created_at": _TIME, "updated_at": _TIME, "upload": _UPLOAD_EXAMPLE}
IMPORT_EXAMPLE = {"id": "01JD2Q9M1N2P3Q4R5S6T7V8W9X", "format": "jsonl", "size": 1119, "status": "pending_upload",
                  "rows_total": None, "rows_imported": 0, "rows_failed": 0, "errors": [],
                  "created_at": _TIME, "updated_at": _TIME, "completed_at": None, "upload": _UPLOAD_EXAMPLE}

_ITEM_LINKS = {
    "GetItem": {"operationId": "getItem", "parameters": {"id": "$response.body#/id"},
                "description": "The created item."},
    "ReplaceItem": {"operationId": "replaceItem",
                    "parameters": {"id": "$response.body#/id", "If-Match": "$response.header.ETag"},
                    "description": "Replace the created item, if unchanged."},
    "PatchItem": {"operationId": "patchItem",
                  "parameters": {"id": "$response.body#/id", "If-Match": "$response.header.ETag"},
                  "description": "Merge-patch the created item, if unchanged."},
    "DeleteItem": {"operationId": "deleteItem", "parameters": {"id": "$response.body#/id"},
                   "description": "Delete the created item."},
    "ListAttachments": {"operationId": "listAttachments", "parameters": {"id": "$response.body#/id"},
                        "description": "The created item's attachments."},
}


def _next_page(operation_id: str) -> dict[str, Any]:
    return {"NextPage": {"operationId": operation_id, "parameters": {"cursor": "$response.body#/next_cursor"},
                         "description": "The next page, while next_cursor is not null."}}


def _service_paths() -> dict[str, Any]:
    return {
        "/health": {
            "get": {
                "operationId": "health",
                "summary": "Health check",
                "description": "Answers 200 while the service runs; needs no API key.",
                "tags": ["service"],
                "security": [],
                "responses": {"200": _ok("Health", "The service is up", {"status": "ok", "version": __version__}),
                              **errors(500, 503)},
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This OpenAPI document",
                "description": "The OpenAPI 3.1 description of every route; needs no API key.",
                "tags": ["service"],
                "security": [],
                "responses": {
                    "200": {"description": "This document", "headers": _request_id(True),
                            "content": {"application/json": {"schema": {"type": "object"},
                                                             "example": {"openapi": "3.1.0"}}}},
                    **errors(500, 503),
                },
            }
        },
    }


def _item_paths() -> dict[str, Any]:
    return {
        "/items": {
            "post": {
                "operationId": "createItem",
                "summary": "Create an item",
                "description": "Creates an item; the server assigns a ULID when `id` is absent. A duplicate `id` is "
                               "a 409.",
                "tags": ["items"],
                "parameters": [IDEMPOTENCY_KEY],
                "requestBody": _body("ItemCreate", {"name": "Receipt", "tags": ["travel"],
                                                    "data": {"amount": 12.5, "currency": "EUR"}}),
                "responses": {
                    "201": _ok("Item", "Created", ITEM_EXAMPLE,
                               {"ETag": ETAG, "Location": _location("/items/{id}"), "Idempotent-Replayed": REPLAYED},
                               _ITEM_LINKS),
                    **errors(409, *_BODY_ERRORS, *_AUTHED),
                },
            },
            "get": {
                "operationId": "listItems",
                "summary": "List items",
                "description": ("A page of the tenant's live items, all of them by id, or found by tag or name "
                                "prefix, or sorted by name or last change; each a Query on an index. Follow "
                                "next_cursor until it is null."),
                "tags": ["items"],
                "parameters": ITEM_PAGING,
                "responses": {
                    "200": _ok("ItemPage", "A page of items, in the order asked for",
                               {"items": [ITEM_EXAMPLE], "next_cursor": None}, links=_next_page("listItems")),
                    **errors(400, *_AUTHED),
                },
            },
        },
        "/items/{id}": {
            "parameters": [ITEM_ID],
            "get": {
                "operationId": "getItem",
                "summary": "Get an item",
                "description": "The item with its ETag; If-None-Match with the current ETag answers 304.",
                "tags": ["items"],
                "parameters": [IF_NONE_MATCH],
                "responses": {
                    "200": _ok("Item", "The item", ITEM_EXAMPLE, {"ETag": ETAG}),
                    "304": _empty("Not modified: If-None-Match names the current version", {"ETag": ETAG}),
                    **errors(400, 404, *_AUTHED),
                },
            },
            "put": {
                "operationId": "replaceItem",
                "summary": "Replace an item",
                "description": "Replaces the writable fields; omitted optional fields reset. Never creates (404).",
                "tags": ["items"],
                "parameters": [IF_MATCH],
                "requestBody": _body("ItemReplace", {"name": "Receipt", "description": "Hotel"}),
                "responses": {
                    "200": _ok("Item", "Replaced", ITEM_EXAMPLE, {"ETag": ETAG}),
                    **errors(404, 412, *_BODY_ERRORS, *_AUTHED),
                },
            },
            "patch": {
                "operationId": "patchItem",
                "summary": "Merge-patch an item",
                "description": "JSON Merge Patch (RFC 7396): `null` removes an optional field, objects in `data` "
                               "merge recursively. `application/json` is accepted too, with the same meaning.",
                "tags": ["items"],
                "parameters": [IF_MATCH],
                "requestBody": _body("ItemPatch", {"description": None, "data": {"amount": 13}}, MERGE_PATCH),
                "responses": {
                    "200": _ok("Item", "Patched", ITEM_EXAMPLE, {"ETag": ETAG}),
                    **errors(404, 409, 412, *_BODY_ERRORS, *_AUTHED),
                },
            },
            "delete": {
                "operationId": "deleteItem",
                "summary": "Delete an item",
                "description": "Deletes the item and its attachments.",
                "tags": ["items"],
                "parameters": [IF_MATCH],
                "responses": {"204": _empty("Deleted"), **errors(400, 404, 412, *_AUTHED)},
            },
        },
    }


def _event_paths() -> dict[str, Any]:
    """Attachments (files stored beside an item) and imports (bulk creation from a file)."""
    return {
        "/items/{id}/attachments": {
            "parameters": [ITEM_ID],
            "post": {
                "operationId": "createAttachment",
                "summary": "Declare an attachment",
                "description": "Declares a file and returns a presigned form that uploads it directly to storage. "
                               "At most 20 per item (409).",
                "tags": ["attachments"],
                "parameters": [IDEMPOTENCY_KEY],
                "requestBody": _body("AttachmentCreate", {"filename": "receipt.pdf", "content_type": "application/pdf",
                                                          "size": 48213}),
                "responses": {
                    "201": _ok("Attachment", "Created, pending its upload", ATTACHMENT_EXAMPLE,
                               {"Location": _location("/items/{id}/attachments/{attachment_id}"),
                                "Idempotent-Replayed": REPLAYED},
                               {"GetAttachment": {"operationId": "getAttachment",
                                                  "parameters": {"id": "$response.body#/item_id",
                                                                 "attachment_id": "$response.body#/id"},
                                                  "description": "The created attachment."},
                                "DeleteAttachment": {"operationId": "deleteAttachment",
                                                     "parameters": {"id": "$response.body#/item_id",
                                                                    "attachment_id": "$response.body#/id"},
                                                     "description": "Delete the created attachment."}}),
                    **errors(404, 409, *_BODY_ERRORS, *_AUTHED),
                },
            },
            "get": {
                "operationId": "listAttachments",
                "summary": "List an item's attachments",
                "description": "Every attachment of the item, whatever its status.",
                "tags": ["attachments"],
                "responses": {"200": _ok("AttachmentList", "The item's attachments",
                                         {"attachments": [ATTACHMENT_EXAMPLE]}),
                              **errors(404, *_AUTHED)},
            },
        },
        "/items/{id}/attachments/{attachment_id}": {
            "parameters": [ITEM_ID, ATTACHMENT_ID],
            "get": {
                "operationId": "getAttachment",
                "summary": "Get an attachment",
                "description": "The attachment: `upload` while pending, `download_url` when ready.",
                "tags": ["attachments"],
                "responses": {"200": _ok("Attachment", "The attachment", ATTACHMENT_EXAMPLE),
                              **errors(404, *_AUTHED)},
            },
            "delete": {
                "operationId": "deleteAttachment",
                "summary": "Delete an attachment",
                "description": "Deletes the attachment and its stored file.",
                "tags": ["attachments"],
                "responses": {"204": _empty("Deleted, with its file"), **errors(404, *_AUTHED)},
            },
        },
        "/imports": {
            "post": {
                "operationId": "createImport",
                "summary": "Start an import",
                "description": "Declares a JSONL or CSV file of items and returns a presigned form to upload it.",
                "tags": ["imports"],
                "parameters": [IDEMPOTENCY_KEY],
                "requestBody": _body("ImportCreate", {"format": "jsonl", "size": 1119}),
                "responses": {
                    "201": _ok("Import", "Created, pending its upload", IMPORT_EXAMPLE,
                               {"Location": _location("/imports/{import_id}"), "Idempotent-Replayed": REPLAYED},
                               {"GetImport": {"operationId": "getImport",
                                              "parameters": {"import_id": "$response.body#/id"},
                                              "description": "The created import and its progress."}}),
                    **errors(409, *_BODY_ERRORS, *_AUTHED),
                },
            },
            "get": {
                "operationId": "listImports",
                "summary": "List imports",
                "description": "A page of the tenant's imports by id; follow next_cursor until it is null.",
                "tags": ["imports"],
                "parameters": PAGING,
                "responses": {"200": _ok("ImportPage", "A page of imports by id",
                                         {"imports": [IMPORT_EXAMPLE], "next_cursor": None},
                                         links=_next_page("listImports")),
                              **errors(400, *_AUTHED)},
            },
        },
        "/imports/{import_id}": {
            "parameters": [IMPORT_ID],
            "get": {
                "operationId": "getImport",
                "summary": "Get an import",
                "description": "The import and its progress.",
                "tags": ["imports"],
                "responses": {"200": _ok("Import", "The import and its progress", IMPORT_EXAMPLE),
                              **errors(404, *_AUTHED)},
            },
        },
    }


def schemas() -> dict[str, Any]:
    result: dict[str, Any] = {}
    for model in _MODELS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in schema.pop("$defs", {}).items():
            result.setdefault(name, definition)
        result[model.__name__] = schema
    settings = get_settings()
    result["AttachmentCreate"]["properties"]["size"]["maximum"] = settings.max_attachment_bytes
    result["ImportCreate"]["properties"]["size"]["maximum"] = settings.max_import_bytes
    return result


@functools.cache
def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Items service",
            "version": __version__,
            "description": "Multi-tenant items API (docs/API.md). Errors, the application's and the gateway's, are "
                           "RFC 9457 problem documents (`application/problem+json`). A method a path does not "
                           "support is a 405 `method-not-allowed` problem with an `Allow` header listing those "
                           "it does (`components.responses.MethodNotAllowed`) where the application or the local "
                           "stack answers it; a deployed stage's API Gateway answers it as an unknown route, "
                           "404 `not-found`.",
            "license": {"name": "Proprietary", "identifier": "LicenseRef-Proprietary"},
        },
        "servers": [{"url": "/", "description": "The stage serving this document"}],
        "security": [{"apiKey": []}],
        "tags": TAGS,
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer",
                                           "description": "Authorization: Bearer <api-key>"}},
            "schemas": schemas(),
            "responses": {
                "MethodNotAllowed": {
                    "description": "The path exists but not with this method (`method-not-allowed`).",
                    "headers": {**_request_id(False),
                                "Allow": _header("The methods the path supports, e.g. GET, POST.",
                                                 {"type": "string"}, required=True)},
                    "content": {PROBLEM: {"schema": _ref("ProblemDocument"), "example": _problem_example(405)}},
                }
            },
        },
        "paths": {**_service_paths(), **_item_paths(), **_event_paths()},
    }
