"""Stage secrets from SSM Parameter Store: read on first use, cached for ``CACHE_SECONDS``.

Lazily, so a container that never lists anything never calls SSM, and the cold start pays
nothing. Cached, so listing costs no extra call; for a few minutes only, so a rotated parameter
reaches every container without a redeploy.

Rotating the cursor secret without breaking a cursor any client holds:

1. append the new secret to the parameter (``old,new``): every container verifies with both
   within ``CACHE_SECONDS``, still signing with the old one;
2. after ``CACHE_SECONDS``, put it first (``new,old``): new cursors are signed with it, and the
   old cursors still verify everywhere;
3. once no client can still hold an old cursor, remove the old secret (``new``).

If Parameter Store cannot be reached when the cache has expired, the cached secrets are used
a while longer (and a warning logged): a brief SSM outage does not stop listings.
"""

from __future__ import annotations

import threading
import time

from chalicelib.store import aws
from chalicelib.store.failures import from_aws_error
from chalicelib.util.observability import logger

CACHE_SECONDS = 300.0

_cache: dict[str, tuple[float, str]] = {}
_lock = threading.Lock()


def parameter_value(name: str) -> str:
    """The value of the SecureString parameter ``name``."""
    now = time.monotonic()
    with _lock:
        cached = _cache.get(name)
    if cached is not None and now - cached[0] < CACHE_SECONDS:
        return cached[1]
    try:
        value = aws.ssm().get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    except Exception as exc:
        if cached is not None and from_aws_error(exc) is not None:
            logger().warning("cursor secrets not refreshed; using the cached ones", error=str(exc))
            return cached[1]
        raise
    with _lock:
        _cache[name] = (now, str(value))
    return str(value)


def forget() -> None:
    """Drop the cache (the next use reads Parameter Store again)."""
    with _lock:
        _cache.clear()
