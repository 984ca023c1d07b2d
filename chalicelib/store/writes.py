"""Conditional writes: one way to run one and to tell a failed condition from other failures.

A write conditional on the stored record (alive, at a version, in a state) fails with
``ConditionalCheckFailedException``; when the request asked for it, DynamoDB returns the record as
it was (``ReturnValuesOnConditionCheckFailure=ALL_OLD``), so telling "gone" from "changed" costs no
extra read. ``conditional`` turns that failure into ``ConditionNotMet`` carrying the old record;
``applied`` answers whether the write happened.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from botocore.exceptions import ClientError

from chalicelib.store.codec import from_item

# ``None``: no If-Match; ``"*"``: any existing version; a set: one of these versions.
Precondition = None | Literal["*"] | frozenset[int]


class ConditionNotMet(Exception):
    """A conditional write's condition failed: nothing was written; ``old`` is the record as it was."""

    def __init__(self, old: dict[str, Any] | None) -> None:
        super().__init__("the write's condition failed")
        self.old = old


def cancellation_reasons(exc: ClientError) -> list[dict[str, Any]] | None:
    """Per-action reasons of a cancelled transaction (``Item`` holds the old item when asked for)."""
    if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return None
    return [dict(reason) for reason in exc.response.get("CancellationReasons") or []]


def is_condition_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def old_item_of(exc: ClientError) -> dict[str, Any] | None:
    """The item as it was when a condition failed (``ReturnValuesOnConditionCheckFailure``)."""
    item: Any = exc.response.get("Item")
    return from_item(item) if item else None


class CompanionRefused(Exception):
    """A companion entry of a transaction (not the record being written) failed its condition.

    The transaction wrote nothing. Raised for, e.g., an idempotency record that is no longer the
    running request's claim.
    """


def conditional(operation: Callable[..., Any], **request: Any) -> Any:
    """Run a conditional write; on a failed condition raise ``ConditionNotMet`` (nothing written)."""
    try:
        return operation(**request)
    except ClientError as exc:
        if is_condition_failure(exc):
            raise ConditionNotMet(old_item_of(exc)) from exc
        raise


def applied(operation: Callable[..., Any], **request: Any) -> bool:
    """Run a conditional write: True when it was written, False when its condition failed."""
    try:
        conditional(operation, **request)
    except ConditionNotMet:
        return False
    return True
