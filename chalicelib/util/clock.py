"""Time in the service's one wire format: RFC 3339, UTC, millisecond precision, ``Z`` suffix.

Stored timestamps use the same fixed-width format, so they compare correctly as strings in
DynamoDB condition and key expressions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

# Where the service reads time: the wall clock (seconds since the epoch) and a monotonic clock for
# durations and deadlines. Tests put their own in place (``sources``) so that rules about time are
# tested by moving time, not by waiting for it on a machine of unknown speed.
_wall: Callable[[], float] = time.time
_monotonic: Callable[[], float] = time.monotonic


def wall_seconds() -> float:
    return _wall()


def monotonic() -> float:
    return _monotonic()


@contextmanager
def sources(wall: Callable[[], float], monotonic: Callable[[], float]) -> Iterator[None]:
    """Read time from ``wall`` and ``monotonic`` inside the block."""
    global _wall, _monotonic
    saved = _wall, _monotonic
    _wall, _monotonic = wall, monotonic
    try:
        yield
    finally:
        _wall, _monotonic = saved


def now() -> datetime:
    return truncate(datetime.fromtimestamp(_wall(), UTC))


def truncate(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def format_timestamp(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    # Not strftime: its %Y does not pad years before 1000 on every platform.
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}."
        f"{utc.microsecond // 1000:03d}Z"
    )


def now_text() -> str:
    return format_timestamp(now())


def epoch_seconds(moment: datetime) -> int:
    return int(moment.timestamp())


def seconds_between(earlier: str, later: str) -> float:
    """Seconds from one stored timestamp to another (negative when ``earlier`` is later)."""
    return (datetime.fromisoformat(later) - datetime.fromisoformat(earlier)).total_seconds()
