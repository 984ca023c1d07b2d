"""The field rules of item bodies, written once as pydantic-core schemas.

Each rule is a core schema (``pydantic_core.core_schema``) whose custom checks are the plain
functions below. The same blocks

- validate ``POST``/``PUT``/``PATCH`` bodies on the request path (``validate``), with
  ``pydantic_core`` alone: importing ``pydantic`` and building its models costs a cold ``POST``
  more than the rest of its imports together (docs/PERFORMANCE.md);
- make the fields of the pydantic models in ``models.py`` (``Rule``), which generate the OpenAPI
  schemas and validate imported rows.

tests/unit/test_item_rules.py checks that each model's fields are exactly the body schemas here and
feeds random and hostile bodies to both, expecting the same values and the same errors.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic_core import PydanticCustomError, PydanticKnownError, SchemaValidator, ValidationError
from pydantic_core import core_schema as cs

from chalicelib.limits import ID_PATTERN, MAX_DATA_BYTES, MAX_DATA_DEPTH, MAX_TAG_LENGTH, MAX_TAGS
from chalicelib.util import clock, jsonutil

READ_ONLY_FIELDS = frozenset({"id", "version", "created_at", "updated_at"})
MAX_NAME_LENGTH = 200
MAX_DESCRIPTION_LENGTH = 4000

# DynamoDB numbers: at most 38 significant digits, magnitude 1E-130 .. 9.99…E+125.
_MAX_DIGITS = 38
_MIN_ADJUSTED_EXPONENT = -130
_MAX_ADJUSTED_EXPONENT = 125

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)

# -- the custom checks ------------------------------------------------------------------------------


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


def _not_null(value: Any) -> Any:
    if value is None:
        raise PydanticCustomError("string_type", "must be a string")
    return value


# -- the rules --------------------------------------------------------------------------------------


def _length(schema: cs.CoreSchema, min_length: int, max_length: int) -> cs.CoreSchema:
    """``schema`` then a length check, as pydantic applies ``StringConstraints`` after a validator:
    ``too_short``/``too_long`` errors, and ``minLength``/``maxLength`` in the JSON schema."""

    def at_least(value: Any) -> Any:
        if len(value) < min_length:
            raise PydanticKnownError("too_short", {"field_type": "Value", "min_length": min_length,
                                                   "actual_length": len(value)})
        return value

    def at_most(value: Any) -> Any:
        if len(value) > max_length:
            raise PydanticKnownError("too_long", {"field_type": "Value", "max_length": max_length,
                                                  "actual_length": len(value)})
        return value

    shortest = cs.no_info_after_validator_function(
        at_least, schema, metadata={"pydantic_js_updates": {"minLength": min_length}}
    )
    return cs.no_info_after_validator_function(
        at_most, shortest, metadata={"pydantic_js_updates": {"maxLength": max_length}}
    )


def _trimmed(max_length: int) -> cs.CoreSchema:
    return _length(cs.no_info_before_validator_function(_strip, cs.str_schema()), 1, max_length)


def _after(function: Callable[[Any], Any], schema: cs.CoreSchema) -> cs.CoreSchema:
    return cs.no_info_after_validator_function(function, schema)


def _object() -> cs.CoreSchema:
    return cs.dict_schema(keys_schema=cs.str_schema(), values_schema=cs.any_schema())


def _tags() -> cs.CoreSchema:
    return _after(_dedupe, cs.list_schema(_trimmed(MAX_TAG_LENGTH), max_length=MAX_TAGS, metadata={}))


def _expiry() -> cs.CoreSchema:
    timestamp = cs.nullable_schema(cs.datetime_schema(microseconds_precision="truncate"))
    return _after(_in_future, cs.no_info_before_validator_function(parse_timestamp, timestamp))


NAME = _trimmed(MAX_NAME_LENGTH)
# ``PATCH``: absent leaves the name as it is; ``null`` cannot remove a required field.
PATCH_NAME = cs.no_info_before_validator_function(_not_null, cs.nullable_schema(_trimmed(MAX_NAME_LENGTH)))
DESCRIPTION = cs.nullable_schema(cs.str_schema(max_length=MAX_DESCRIPTION_LENGTH))
TAGS = _tags()
PATCH_TAGS = cs.nullable_schema(_tags())
DATA = _after(_check_data, _object())
PATCH_DATA = _after(_check_patch_data, cs.nullable_schema(_object()))
EXPIRES_AT = _expiry()
ITEM_ID = cs.nullable_schema(cs.str_schema(pattern=ID_PATTERN, metadata={}))

Shape = Literal["ItemCreate", "ItemReplace", "ItemPatch"]


def _optional(schema: cs.CoreSchema) -> cs.WithDefaultSchema:
    return cs.with_default_schema(schema, default=None)


def _empty(schema: cs.CoreSchema, factory: Callable[[], Any]) -> cs.WithDefaultSchema:
    return cs.with_default_schema(schema, default_factory=factory, default_factory_takes_data=False)


_REPLACE: dict[str, cs.CoreSchema] = {
    "name": NAME,
    "description": _optional(DESCRIPTION),
    "tags": _empty(TAGS, list),
    "data": _empty(DATA, dict),
    "expires_at": _optional(EXPIRES_AT),
}
# Each body's fields, in the order of the model's fields (models.py).
BODIES: dict[Shape, dict[str, cs.CoreSchema]] = {
    "ItemReplace": _REPLACE,
    "ItemCreate": {**_REPLACE, "id": _optional(ITEM_ID)},
    "ItemPatch": {
        "name": _optional(PATCH_NAME),
        "description": _optional(DESCRIPTION),
        "tags": _optional(PATCH_TAGS),
        "data": _optional(PATCH_DATA),
        "expires_at": _optional(EXPIRES_AT),
    },
}


def body_schema(shape: Shape) -> cs.ModelFieldsSchema:
    """The body as a pydantic model validates it: these fields, no others."""
    fields = {name: cs.model_field(schema) for name, schema in BODIES[shape].items()}
    return cs.model_fields_schema(fields, model_name=shape, extra_behavior="forbid")


_validators: dict[Shape, SchemaValidator] = {}


def validate(shape: Shape, body: object) -> dict[str, Any]:
    """The body's fields, normalised, defaults filled in; ``ValidationError`` as the model raises it."""
    validator = _validators.get(shape)
    if validator is None:
        validator = _validators[shape] = SchemaValidator(
            body_schema(shape), cs.CoreConfig(title=shape, extra_fields_behavior="forbid")
        )
    fields, _extra, _set = validator.validate_python(body)
    return dict(fields)


# -- errors as the API reports them -------------------------------------------------------------------


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
    """Validation errors as ``{"pointer", "detail"}`` with JSON Pointers into the body."""
    result = []
    for error in exc.errors(include_url=False):
        ctx = error.get("ctx") or {}
        pointer = ctx.get("pointer") or _pointer((*prefix, *error["loc"]))
        result.append({"pointer": pointer, "detail": _message(error)})
    return result
