"""Types of JSON values as the service holds them: non-integer numbers are exact ``Decimal``s."""

from __future__ import annotations

from decimal import Decimal
from typing import TypeAlias

JsonValue: TypeAlias = "str | int | float | Decimal | bool | list[JsonValue] | dict[str, JsonValue] | None"
JsonObject: TypeAlias = "dict[str, JsonValue]"
