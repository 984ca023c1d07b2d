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
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from chalicelib.problems import unavailable
from chalicelib.store import aws
from chalicelib.store.codec import from_item
from chalicelib.store.writes import CompanionRefused, ConditionNotMet, cancellation_reasons, conditional

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


def refused_for_contents(exc: ClientError) -> bool:
    """The request was refused for its contents (a value, a size), not for the moment it was sent."""
    if exc.response.get("Error", {}).get("Code") == "ValidationException":
        return True
    return any(str(r.get("Code")) == "ValidationError" for r in cancellation_reasons(exc) or [])


class ConditionsFailed(ConditionNotMet):
    """Actions of a write failed their conditions; nothing was written.

    ``failed`` maps the index of each such action to its record as it was (when the action asked
    for it with ``ReturnValuesOnConditionCheckFailure``); ``old`` is the first one's.
    """

    def __init__(self, failed: dict[int, dict[str, Any] | None]) -> None:
        super().__init__(next(iter(failed.values()), None))
        self.failed = failed


_SINGLE = {"Put": "put_item", "Update": "update_item", "Delete": "delete_item", "ConditionCheck": None}


def transact_with(actions: list[dict[str, Any]], also: dict[str, Any] | None = None) -> None:
    """Write ``actions`` and the companion entry ``also`` (e.g. the request's idempotency record),
    all or nothing.

    A failed condition of one of ``actions`` raises ``ConditionsFailed`` (by index, with the old
    records); one of ``also`` alone raises ``CompanionRefused``. A single action without a
    companion is sent as the plain write it is (``PutItem``, ``UpdateItem``, ``DeleteItem``).
    """
    if also is None and len(actions) == 1:
        (kind, request), = actions[0].items()
        operation = _SINGLE.get(kind)
        if operation is not None:
            try:
                conditional(getattr(aws.dynamodb(), operation), **request)
            except ConditionNotMet as single:
                raise ConditionsFailed({0: single.old}) from single
            return
    try:
        transact([*actions, *([also] if also is not None else [])])
    except ClientError as exc:
        failed = {
            index: from_item(reason["Item"]) if reason.get("Item") else None
            for index, reason in enumerate(cancellation_reasons(exc) or [])
            if reason.get("Code") == "ConditionalCheckFailed"
        }
        own = {index: old for index, old in failed.items() if index < len(actions)}
        if own:
            raise ConditionsFailed(own) from exc
        if failed:
            raise CompanionRefused() from exc
        raise


def create_fresh(actions: list[dict[str, Any]], also: dict[str, Any] | None = None, *, fresh: int = 0) -> bool:
    """``transact_with`` for a create whose action ``fresh`` puts a record under a new, unique id
    (conditional on its absence).

    False when that condition failed: only an earlier attempt of this very call (its answer lost,
    then retried by the client library) can have written the record, with the rest. Any other
    failed condition raises as in ``transact_with``.
    """
    try:
        transact_with(actions, also)
    except ConditionsFailed as refused:
        if fresh in refused.failed:
            return False
        raise
    return True


# Given the answer a request will get, a transaction entry to write together with its record (the
# request's idempotency record), or None.
Completion = Callable[[dict[str, Any]], dict[str, Any] | None]
_Answer = TypeVar("_Answer", bound=dict[str, Any])


def answer_after(
    answer: _Answer, completion: Completion | None, write: Callable[[dict[str, Any] | None], object]
) -> _Answer:
    """``write`` (given the completion's entry for ``answer``, if any), then ``answer``.

    The answer is made before the write, so that the idempotency record that stores it can be
    written in the same transaction as the record it describes.
    """
    write(completion(answer) if completion is not None else None)
    return answer
