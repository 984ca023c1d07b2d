"""DynamoDB attribute values <-> Python values, and expressions with generated placeholders."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, fields
from decimal import Decimal
from typing import Any, TypeVar

_Record = TypeVar("_Record")

# Keys of stored maps are escaped so that none is empty: an empty map key is a valid JSON key but
# not a safe DynamoDB one (the local emulator drops it and then answers with a malformed item). A
# key that is empty or starts with the escape character gets one more in front; nothing else
# changes, so what is stored stays readable.
_KEY_ESCAPE = "~"


def map_key(key: str) -> str:
    """A JSON object key as stored in a DynamoDB map (and named in expressions): never empty."""
    return _KEY_ESCAPE + key if not key or key.startswith(_KEY_ESCAPE) else key


def _json_key(stored: str) -> str:
    return stored[1:] if stored.startswith(_KEY_ESCAPE) else stored


def to_attr(value: Any) -> dict[str, Any]:
    """A Python value as a DynamoDB attribute value (numbers must be ``int`` or ``Decimal``)."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise TypeError("DynamoDB cannot store NaN or Infinity")
        return {"N": str(value)}
    if isinstance(value, dict):
        return {"M": {map_key(str(k)): to_attr(v) for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"L": [to_attr(v) for v in value]}
    if isinstance(value, bytes):
        return {"B": value}
    raise TypeError(f"cannot store {type(value).__name__} in DynamoDB")


def from_attr(attr: dict[str, Any]) -> Any:
    """A DynamoDB attribute value as Python: numbers as exact ``Decimal``."""
    (kind, value), = attr.items()
    if kind == "S":
        return value
    if kind == "N":
        return Decimal(value)
    if kind == "BOOL":
        return value
    if kind == "NULL":
        return None
    if kind == "M":
        return {_json_key(k): from_attr(v) for k, v in value.items()}
    if kind == "L":
        return [from_attr(v) for v in value]
    if kind == "B":
        return bytes(value)
    if kind == "SS":
        return set(value)
    if kind == "NS":
        return {Decimal(v) for v in value}
    raise TypeError(f"unsupported DynamoDB type {kind}")


def to_item(record: dict[str, Any]) -> dict[str, Any]:
    return {key: to_attr(value) for key, value in record.items()}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {key: from_attr(value) for key, value in item.items()}


def record_of(cls: type[_Record], stored: Mapping[str, Any], **given: Any) -> _Record:
    """A record (a dataclass) from a stored one: each field by name, absent ones at their
    defaults, top-level numbers as ``int``; ``given`` values (converted by the caller) win."""
    values = {}
    for field in fields(cls):  # type: ignore[arg-type]
        if field.name in given:
            values[field.name] = given[field.name]
        elif field.name in stored:
            value = stored[field.name]
            values[field.name] = int(value) if isinstance(value, Decimal) else value
    return cls(**values)


def stored_fields(record: Any) -> dict[str, Any]:
    """A record's (a dataclass's) fields that hold something, by name, ready for ``to_item``."""
    return {key: value for key, value in asdict(record).items() if value is not None and value != ()}


class Expression:
    """Builds expression attribute names and values with generated placeholders."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def name(self, *path: str) -> str:
        parts = []
        for part in path:
            placeholder = f"#n{len(self.names)}"
            self.names[placeholder] = part
            parts.append(placeholder)
        return ".".join(parts)

    def value(self, value: Any) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = to_attr(value)
        return placeholder

    def kwargs(self) -> dict[str, Any]:
        result: dict[str, Any] = {}
        if self.names:
            result["ExpressionAttributeNames"] = self.names
        if self.values:
            result["ExpressionAttributeValues"] = self.values
        return result
