"""The contract's numeric and pattern limits, in one place.

Kept apart from ``rules.py`` and ``models.py`` so that read paths can use them without importing
pydantic-core or pydantic (Lambda cold start is import time; a GET never validates a body).
"""

from __future__ import annotations

import re

MAX_BODY_BYTES = 64 * 1024
MAX_DATA_BYTES = 16 * 1024
MAX_DATA_DEPTH = 16
MAX_TAGS = 20
MAX_TAG_LENGTH = 50
# A name prefix to find (``GET /items?q=``).
MAX_PREFIX_LENGTH = 100
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

_ID = re.compile(ID_PATTERN)


def is_valid_id(value: str) -> bool:
    """Whether ``value`` can be an id (of an item, attachment or import): ``ID_PATTERN``."""
    return _ID.match(value) is not None
