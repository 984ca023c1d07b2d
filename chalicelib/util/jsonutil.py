"""JSON that keeps numbers exact.

Request bodies are parsed with every non-integer number as ``Decimal`` (the type DynamoDB wants),
and responses are written by our own encoder, because ``json`` cannot emit a ``Decimal`` as a bare
number and Chalice's default encoder turns every ``Decimal`` into a float (``2`` → ``2.0``,
``0.1`` → ``0.1000000000000000055…`` for large values).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any


class OutOfRangeNumber:
    """A number literal too large or too small for any ``Decimal`` (``1e99999999999999999999``).

    It is valid JSON, so parsing keeps it (with its text) and validation refuses it where it stands,
    like any other number DynamoDB cannot hold; writing it back gives the same text.
    """

    __slots__ = ("literal",)

    def __init__(self, literal: str) -> None:
        self.literal = literal

    def __repr__(self) -> str:
        return self.literal


class MalformedJSON(ValueError):
    pass


# The deepest nesting a body may have (RFC 8259 section 9 lets a parser limit it). Far above what
# any field allows (``data`` nests at most 16 levels), and low enough that everything walking a
# parsed body (hashing, validation) stays well inside Python's recursion limit.
MAX_NESTING = 64

# ``\ud800``-style escapes are the only way a parsed string can hold a lone surrogate, a code point
# that is not text: UTF-8 cannot encode it, so DynamoDB (or any output) would fail on it later.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _check_text(value: Any) -> None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise MalformedJSON("a string holds an unpaired surrogate escape (\\ud800-\\udfff)") from exc
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check_text(item)
    elif isinstance(value, list):
        for item in value:
            _check_text(item)


def _not_json(literal: str) -> Any:
    raise MalformedJSON(f"{literal} is not a JSON value (RFC 8259 has no NaN or Infinity)")


def _integer(text: str) -> int | Decimal:
    # int() refuses literals over sys.get_int_max_str_digits() (4,300) digits; Decimal takes any
    # length, and validation then refuses the number as too precise to store.
    return int(text) if len(text) <= 4000 else Decimal(text)


def _fraction(text: str) -> Decimal | OutOfRangeNumber:
    try:
        return Decimal(text)
    except InvalidOperation:  # an exponent beyond what Decimal can represent at all
        return OutOfRangeNumber(text)


def _nesting(value: Any) -> int:
    """Depth of ``value`` (containers count 1 each), without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_NESTING:
            break
        stack.extend((child, depth + 1) for child in children)
    return deepest


def loads(raw: str | bytes) -> Any:
    """Parse JSON text (RFC 8259): numbers exact, NaN/Infinity and excessive nesting refused.

    Every problem with the text itself is a ``MalformedJSON``; nothing else escapes.
    """
    try:
        # A UTF-8 byte order mark is ignored, as RFC 8259 section 8.1 allows.
        text = raw if isinstance(raw, str) else raw.decode("utf-8-sig")
        parsed = json.loads(text, parse_int=_integer, parse_float=_fraction, parse_constant=_not_json)
        if (text.count("[") + text.count("{") > MAX_NESTING) and _nesting(parsed) > MAX_NESTING:
            raise MalformedJSON(f"JSON is nested more than {MAX_NESTING} levels deep")
        if _SURROGATE_ESCAPE.search(text):
            _check_text(parsed)
        return parsed
    except RecursionError as exc:
        raise MalformedJSON(f"JSON is nested more than {MAX_NESTING} levels deep") from exc
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
    # The exponent is looked at first: int() of 1E+999999999 would build a billion-digit integer.
    if value.is_finite() and value.adjusted() < 38 and value == value.to_integral_value():
        return str(int(value))
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
    elif isinstance(value, OutOfRangeNumber):
        out.append(value.literal)
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


def pointer(*path: str | int) -> str:
    """A JSON Pointer (RFC 6901) to ``path``: ``~`` and ``/`` in a key escaped as ``~0`` and ``~1``."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)
