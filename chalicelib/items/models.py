"""Request and response models: every field rule of the contract lives here, once.

The same models validate requests, imported rows and patched results, and generate the OpenAPI
schemas, so the documentation cannot drift from what the code accepts.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from chalicelib.limits import ID_PATTERN, MAX_DATA_BYTES, MAX_DATA_DEPTH, MAX_TAG_LENGTH, MAX_TAGS
from chalicelib.util import clock, jsonutil

READ_ONLY_FIELDS = frozenset({"id", "version", "created_at", "updated_at"})

# DynamoDB numbers: at most 38 significant digits, magnitude 1E-130 .. 9.99…E+125.
_MAX_DIGITS = 38
_MIN_ADJUSTED_EXPONENT = -130
_MAX_ADJUSTED_EXPONENT = 125

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _dedupe(tags: list[str]) -> list[str]:
    return list(dict.fromkeys(tags))


def parse_timestamp(value: Any) -> Any:
    """RFC 3339 with an explicit offset, normalised to UTC at millisecond precision."""
    if value is None or isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise PydanticCustomError(
            "timestamp", "must be an RFC 3339 timestamp with an offset, e.g. 2030-01-01T00:00:00Z"
        )
    try:
        parsed = datetime.fromisoformat(value.upper().replace(" ", "T"))
    except ValueError as exc:
        raise PydanticCustomError("timestamp", "is not a valid date and time") from exc
    try:
        return clock.truncate(parsed.astimezone(UTC))
    except OverflowError as exc:  # e.g. 9999-12-31T23:00:00-05:00 is in the year 10000 in UTC
        raise PydanticCustomError("timestamp", "must fall within the years 0001 to 9999 in UTC") from exc


def _in_future(value: datetime | None) -> datetime | None:
    if value is not None and value <= clock.now():
        raise PydanticCustomError("expired", "must be in the future")
    return value


def _pointer(path: tuple[str | int, ...]) -> str:
    return jsonutil.pointer(*path)


def _check_number(value: Decimal | int, path: tuple[str | int, ...]) -> Decimal | int:
    # Decimal(int) is exact whatever the context; strip_zeros avoids the context's 28-digit rounding.
    normal = jsonutil.strip_zeros(Decimal(value))
    if not normal.is_finite():
        raise PydanticCustomError(
            "number", "must be a finite number", {"pointer": _pointer(("data", *path))}
        )
    if normal.is_zero():
        return value
    digits = len(normal.as_tuple().digits)
    adjusted = normal.adjusted()
    if digits > _MAX_DIGITS:
        raise PydanticCustomError(
            "number",
            "has more than 38 significant digits",
            {"pointer": _pointer(("data", *path))},
        )
    if adjusted < _MIN_ADJUSTED_EXPONENT or adjusted > _MAX_ADJUSTED_EXPONENT:
        raise PydanticCustomError(
            "number",
            "is outside the storable range 1E-130 .. 9.99E+125",
            {"pointer": _pointer(("data", *path))},
        )
    return value


def check_json_value(value: Any, path: tuple[str | int, ...] = ()) -> int:
    """Validate a JSON value for storage; return its nesting depth (containers count 1 each)."""
    if isinstance(value, jsonutil.OutOfRangeNumber):
        raise PydanticCustomError(
            "number", "is outside the storable range 1E-130 .. 9.99E+125", {"pointer": _pointer(("data", *path))}
        )
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return 0
    if isinstance(value, (int, Decimal)):
        _check_number(value, path)
        return 0
    if isinstance(value, dict):
        depth = 0
        for key, item in value.items():
            depth = max(depth, check_json_value(item, (*path, key)))
        return depth + 1
    if isinstance(value, list):
        depth = 0
        for index, item in enumerate(value):
            depth = max(depth, check_json_value(item, (*path, index)))
        return depth + 1
    raise PydanticCustomError(  # pragma: no cover - json.loads yields nothing else
        "json", "is not a JSON value", {"pointer": _pointer(("data", *path))}
    )


def _check_data(data: dict[str, Any]) -> dict[str, Any]:
    depth = check_json_value(data)
    if depth > MAX_DATA_DEPTH:
        raise PydanticCustomError("depth", f"must not be nested more than {MAX_DATA_DEPTH} levels deep")
    if jsonutil.compact_size(data) > MAX_DATA_BYTES:
        raise PydanticCustomError("size", f"must be at most {MAX_DATA_BYTES} bytes as compact JSON")
    return data


def _check_patch_data(data: dict[str, Any] | None) -> dict[str, Any] | None:
    # Depth and size are checked on the merged result; here only the values themselves.
    if data is not None:
        check_json_value(data)
    return data


Name = Annotated[str, BeforeValidator(_strip), StringConstraints(min_length=1, max_length=200)]
Description = Annotated[str | None, Field(max_length=4000)]
Tag = Annotated[str, BeforeValidator(_strip), StringConstraints(min_length=1, max_length=MAX_TAG_LENGTH)]
Tags = Annotated[list[Tag], Field(max_length=MAX_TAGS), AfterValidator(_dedupe)]
Data = Annotated[dict[str, Any], AfterValidator(_check_data)]
Timestamp = Annotated[datetime, BeforeValidator(parse_timestamp)]
FutureTimestamp = Annotated[datetime | None, BeforeValidator(parse_timestamp), AfterValidator(_in_future)]
ItemId = Annotated[str, Field(pattern=ID_PATTERN)]


def _not_null(value: Any) -> Any:
    if value is None:
        raise PydanticCustomError("string_type", "must be a string")
    return value


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

    id: ItemId | None = Field(default=None, description="Optional; a ULID is assigned when absent.")


class ItemPatch(_Strict):
    """Body of ``PATCH /items/{id}`` (JSON Merge Patch): ``null`` resets an optional field."""

    # Absent leaves the name as it is; ``null`` cannot remove a required field (422), so the
    # schema says string, not nullable, and no default.
    name: Annotated[Name | None, BeforeValidator(_not_null)] = Field(
        default=None, description="1–200 characters after trimming; not nullable.", json_schema_extra=_present_or_absent
    )
    description: Description = Field(default=None, description="``null`` removes it.")
    tags: Tags | None = Field(default=None, description="``null`` resets it to ``[]``.")
    data: Annotated[dict[str, Any] | None, AfterValidator(_check_patch_data)] = Field(
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


def _message(error: Any) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    loc = error["loc"]
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is read-only" if loc and loc[-1] in READ_ONLY_FIELDS else "is not a known field"
    if kind in ("string_too_short", "too_short") and ctx.get("min_length") == 1:
        return "must not be blank"
    if kind == "string_type":
        return "must be a string"
    if kind in ("dict_type", "model_type"):
        return "must be a JSON object"
    if kind == "list_type":
        return "must be a list"
    if kind == "too_long":
        unit = "characters" if isinstance(error.get("input"), str) else "entries"
        return f"must have at most {ctx.get('max_length')} {unit}"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "string_pattern_mismatch":
        return f"must match {ctx.get('pattern')}"
    message: str = error["msg"]
    return message[0].lower() + message[1:] if message else kind


def to_field_errors(exc: ValidationError, prefix: tuple[str | int, ...] = ()) -> list[dict[str, str]]:
    """Pydantic errors as ``{"pointer", "detail"}`` with JSON Pointers into the body."""
    result = []
    for error in exc.errors(include_url=False):
        ctx = error.get("ctx") or {}
        pointer = ctx.get("pointer") or _pointer((*prefix, *error["loc"]))
        result.append({"pointer": pointer, "detail": _message(error)})
    return result
