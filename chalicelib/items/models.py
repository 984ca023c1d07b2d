"""Request and response models: the OpenAPI schemas, and the validation of imported rows.

The fields of the body models are the rules of ``rules.py`` (``Rule``), which also validate
request bodies without pydantic, so the documentation cannot drift from what the code accepts.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from chalicelib.items import rules

if TYPE_CHECKING:
    from pydantic import GetCoreSchemaHandler
    from pydantic_core import core_schema as cs


class Rule:
    """A field's rule from ``rules.py``: the core schema pydantic uses for the annotated field."""

    def __init__(self, schema: cs.CoreSchema) -> None:
        self.schema = schema

    def __get_pydantic_core_schema__(self, _source: Any, _handler: GetCoreSchemaHandler) -> cs.CoreSchema:
        return copy.deepcopy(self.schema)  # pydantic may annotate it; the validators' copy stays as written


Name = Annotated[str, Rule(rules.NAME)]
Description = Annotated[str | None, Rule(rules.DESCRIPTION)]
Tags = Annotated[list[str], Rule(rules.TAGS)]
Data = Annotated[dict[str, Any], Rule(rules.DATA)]
FutureTimestamp = Annotated[datetime | None, Rule(rules.EXPIRES_AT)]
ItemId = Annotated[str | None, Rule(rules.ITEM_ID)]


def _present_or_absent(schema: dict[str, Any]) -> None:
    """The schema of a field that may be absent but never ``null``: its non-null branch, no default."""
    schema.pop("default", None)
    branches = [branch for branch in schema.pop("anyOf") if branch != {"type": "null"}]
    schema.update(branches[0])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ItemReplace(_Strict):
    """Body of ``PUT /items/{id}``: the writable fields; omitted optional fields reset."""

    name: Name = Field(description="1–200 characters after trimming surrounding whitespace.")
    description: Description = None
    tags: Tags = Field(default_factory=list, description="Trimmed; duplicates removed.", json_schema_extra={"default": []})
    data: Data = Field(
        default_factory=dict,
        description="Any JSON object, at most 16 KiB compact and 16 levels deep; numbers exact.",
        json_schema_extra={"default": {}},
    )
    expires_at: FutureTimestamp = Field(
        default=None, description="RFC 3339 with offset, in the future; returned in UTC."
    )


class ItemCreate(ItemReplace):
    """Body of ``POST /items``."""

    id: ItemId = Field(default=None, description="Optional; a ULID is assigned when absent.")


class ItemPatch(_Strict):
    """Body of ``PATCH /items/{id}`` (JSON Merge Patch): ``null`` resets an optional field."""

    # Absent leaves the name as it is; ``null`` cannot remove a required field (422), so the
    # schema says string, not nullable, and no default.
    name: Annotated[str | None, Rule(rules.PATCH_NAME)] = Field(
        default=None, description="1–200 characters after trimming; not nullable.", json_schema_extra=_present_or_absent
    )
    description: Description = Field(default=None, description="``null`` removes it.")
    tags: Annotated[list[str] | None, Rule(rules.PATCH_TAGS)] = Field(default=None, description="``null`` resets it to ``[]``.")
    data: Annotated[dict[str, Any] | None, Rule(rules.PATCH_DATA)] = Field(
        default=None, description="Merged recursively (RFC 7396); ``null`` resets it to ``{}``."
    )
    expires_at: FutureTimestamp = Field(default=None, description="``null`` removes it.")


class Item(BaseModel):
    """An item as the API returns it."""

    id: str
    name: str
    description: str | None
    tags: list[str]
    data: dict[str, Any]
    expires_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime


class ItemPage(BaseModel):
    items: list[Item]
    next_cursor: str | None


class Health(BaseModel):
    status: str
    version: str


# The contract's problem types (API.md "Conventions"); chalicelib/problems.py holds their statuses.
ProblemType = Literal[
    "/problems/bad-request",
    "/problems/unauthorized",
    "/problems/forbidden",
    "/problems/not-found",
    "/problems/method-not-allowed",
    "/problems/conflict",
    "/problems/precondition-failed",
    "/problems/payload-too-large",
    "/problems/unsupported-media-type",
    "/problems/validation-error",
    "/problems/idempotency-key-reused",
    "/problems/rate-limited",
    "/problems/internal-error",
    "/problems/service-unavailable",
]


class ProblemError(BaseModel):
    pointer: str
    detail: str


class ProblemDocument(BaseModel):
    """RFC 9457 problem document (``application/problem+json``)."""

    type: ProblemType = Field(description="``/problems/<slug>``, one of the contract's slugs.")
    title: str
    status: int = Field(ge=400, le=599, description="Equals the HTTP status.")
    detail: str
    request_id: str = Field(description="The request id (X-Request-Id, or the gateway's) to quote.")
    trace_id: str | None = Field(
        default=None, description="The X-Ray trace id of the request, when it was traced (docs/OPERATIONS.md)."
    )
    errors: list[ProblemError] | None = Field(
        default=None, description="For 400 and 422 about specific fields: JSON Pointers into the body, "
        "``/query/<name>`` or ``/header/<name>``."
    )
