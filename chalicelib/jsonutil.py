"""JSON that keeps numbers exact.

Request bodies are parsed with every non-integer number as ``Decimal`` (the type DynamoDB wants),
and responses are written by our own encoder, because ``json`` cannot emit a ``Decimal`` as a bare
number and Chalice's default encoder turns every ``Decimal`` into a float (``2`` → ``2.0``,
``0.1`` → ``0.1000000000000000055…`` for large values).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any


class NonFiniteNumber:
    """Placeholder for NaN/Infinity in a parsed body, so validation can point at the field."""

    __slots__ = ("literal",)

    def __init__(self, literal: str) -> None:
        self.literal = literal

    def __repr__(self) -> str:
        return self.literal


class MalformedJSON(ValueError):
    pass


def loads(raw: str | bytes) -> Any:
    try:
        return json.loads(raw, parse_float=Decimal, parse_constant=NonFiniteNumber)
    except RecursionError as exc:
        raise MalformedJSON("JSON is nested too deeply") from exc
    except UnicodeDecodeError as exc:
        raise MalformedJSON("body is not valid UTF-8") from exc
    except json.JSONDecodeError as exc:
        raise MalformedJSON(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc


_encode_str = json.encoder.encode_basestring  # type: ignore[attr-defined]


def number_text(value: Decimal) -> str:
    """Exact text of a Decimal: ``2`` not ``2.0`` or ``2E+0``, ``0.1`` not ``1E-1``, ``1E+100``.

    Integers print as plain digits up to 38 of them (DynamoDB's precision, so every stored integer
    literal comes back as written); anything larger is an exponent form of the same exact value.
    """
    if value == value.to_integral_value():
        digits = str(int(value))
        if len(digits.lstrip("-")) <= 38:
            return digits
    return str(strip_zeros(value))


def strip_zeros(value: Decimal) -> Decimal:
    """``value`` without trailing zeros, exactly (``Decimal.normalize`` rounds to 28 digits)."""
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int) or not any(digits):
        return value
    count = len(digits)
    while count > 1 and digits[count - 1] == 0:
        count -= 1
    return Decimal((sign, digits[:count], exponent + len(digits) - count))


def _write(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(_encode_str(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, Decimal):
        out.append(number_text(value))
    elif isinstance(value, float):
        out.append(float.__repr__(value))
    elif isinstance(value, dict):
        out.append("{")
        first = True
        for key, item in value.items():
            if not first:
                out.append(",")
            first = False
            out.append(_encode_str(str(key)))
            out.append(":")
            _write(item, out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def compact_size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON: the measure of the ``data`` size limit."""
    return len(dumps(value).encode("utf-8"))


def dumps(value: Any) -> str:
    """Compact JSON text (no spaces), UTF-8 characters kept as they are."""
    out: list[str] = []
    _write(value, out)
    return "".join(out)
