"""Batch reads and writes that finish or fail loudly, never half silently.

``BatchWriteItem`` and ``BatchGetItem`` may succeed while handing back part of the request as
``UnprocessedItems`` / ``UnprocessedKeys`` (throttling, partition limits). Those are retried with
jittered exponential backoff; when they still do not go through, the call raises so the caller's
message or run is retried as a whole instead of losing a part.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.problems import unavailable
from chalicelib.store import aws
from chalicelib.store.writes import cancellation_reasons

# Reasons a transaction is cancelled that a later attempt may not meet again.
_TRANSIENT_REASONS = frozenset(
    {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"}
)
TRANSACT_ATTEMPTS = 6

WRITE_BATCH = 25
GET_BATCH = 100
ATTEMPTS = 8
BASE_DELAY = 0.05
MAX_DELAY = 2.0


class UnprocessedError(RuntimeError):
    """Part of a batch was still unprocessed after every retry."""


def backoff(attempt: int, base: float = BASE_DELAY, cap: float = MAX_DELAY) -> float:
    """Full-jitter exponential backoff: a random delay up to ``base * 2**attempt`` (capped)."""
    return random.uniform(0, min(cap, base * 2**attempt))


def _retry(send: Callable[[dict[str, Any]], dict[str, Any]], request: dict[str, Any], what: str) -> None:
    pending = request
    for attempt in range(ATTEMPTS):
        pending = send(pending)
        if not pending:
            return
        time.sleep(backoff(attempt))
    count = sum(len(v) if isinstance(v, list) else len(v.get("Keys", [])) for v in pending.values())
    raise UnprocessedError(f"{count} {what} still unprocessed after {ATTEMPTS} attempts")


def write(table: str, requests: list[dict[str, Any]]) -> None:
    """``BatchWriteItem`` for any number of ``{"PutRequest"|"DeleteRequest": ...}`` entries."""
    client = aws.dynamodb()

    def send(pending: dict[str, Any]) -> dict[str, Any]:
        response = client.batch_write_item(RequestItems=pending)
        return dict(response.get("UnprocessedItems") or {})

    for start in range(0, len(requests), WRITE_BATCH):
        _retry(send, {table: requests[start : start + WRITE_BATCH]}, "writes")


def put(item: dict[str, Any]) -> dict[str, Any]:
    return {"PutRequest": {"Item": item}}


def delete(key: dict[str, Any]) -> dict[str, Any]:
    return {"DeleteRequest": {"Key": key}}


def get(table: str, keys: list[dict[str, Any]], consistent: bool = True) -> list[dict[str, Any]]:
    """``BatchGetItem``: the items that exist among ``keys`` (in no particular order)."""
    client = aws.dynamodb()
    found: list[dict[str, Any]] = []

    def send(pending: dict[str, Any]) -> dict[str, Any]:
        response = client.batch_get_item(RequestItems=pending)
        found.extend(response.get("Responses", {}).get(table, []))
        return dict(response.get("UnprocessedKeys") or {})

    for start in range(0, len(keys), GET_BATCH):
        _retry(send, {table: {"Keys": keys[start : start + GET_BATCH], "ConsistentRead": consistent}}, "reads")
    return found


def transact(actions: list[dict[str, Any]]) -> None:
    """``TransactWriteItems``, retried while it is cancelled only by conflicts or throttling.

    A cancellation with a failed condition is raised at once (callers read its reasons); a
    transient cancellation that outlasts the retries ends as 503 on the API, a retry for events.
    """
    client: Any = aws.dynamodb()
    for attempt in range(TRANSACT_ATTEMPTS):
        try:
            client.transact_write_items(TransactItems=actions)
            return
        except ClientError as exc:
            reasons = cancellation_reasons(exc)
            codes = {str(r.get("Code")) for r in reasons or []}
            if not reasons or "ConditionalCheckFailed" in codes or not codes & _TRANSIENT_REASONS:
                raise
            if attempt == TRANSACT_ATTEMPTS - 1:
                raise unavailable("the database is busy (concurrent transactions); retry shortly") from exc
            time.sleep(backoff(attempt))
