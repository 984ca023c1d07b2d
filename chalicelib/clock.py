"""Time in the service's one wire format: RFC 3339, UTC, millisecond precision, ``Z`` suffix.

Stored timestamps use the same fixed-width format, so they compare correctly as strings in
DynamoDB condition and key expressions.
"""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return truncate(datetime.now(UTC))


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
