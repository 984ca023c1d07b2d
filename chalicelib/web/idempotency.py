"""``Idempotency-Key`` for creating requests: claim, run once, remember the response, replay it.

Records live in the tenant's partition (``layout.idempotency_key``: ``pk = T#<tenant>``,
``sk = IDEMPOTENCY#<hash>``), so keys are scoped to the tenant by construction. The key hash covers
the route and the key; the payload hash covers the canonical body, so the same key with another
body is told apart (422), a request still in flight is refused (409), and a completed one is
replayed. Failed requests (problems, errors) are not remembered, so the client may retry them with
the same key. A record is forgotten 24 hours after it was written (``ttl``: DynamoDB's TTL removes
it later, and a claim treats it as absent from then on).

Faults. A request claims its key (an ``INPROGRESS`` record), runs, and completes the record with
its response. Three rules make a retry after a 503 safe whatever failed, and whenever:

- **The claim is owned.** It carries a token of this run. When the claim's write was applied but
  its response lost, the client's automatic retry meets the claim; the token tells it is ours, so
  the run goes on instead of refusing itself as "in progress". Releasing a claim (after a
  failure) is conditional on the token and on the claim still being in progress, so a completed
  record or another run's claim is never removed.
- **Completion is atomic with the write.** An operation that writes one record can complete the
  idempotency record in the same ``TransactWriteItems`` (``completion_record``): both or neither.
  After an ambiguous failure (a timeout after DynamoDB applied it), the completed record stays,
  and the client's retry replays the response instead of creating a second item.
- **Claims expire.** An in-progress claim expires with the invocation that made it (Lambda's
  remaining time; ``IN_PROGRESS_BUDGET_MS`` where no Lambda context tells it), so a claim left
  behind by a crash blocks its key for seconds, not for the record's 24 hours. Another request
  with the key then takes the claim over; the first run's completion and release, conditional on
  its token, can no longer touch it.

Every AWS failure the client could retry away ends as a 503 (``from_aws_error``); any other is a
bug and stays a 500.

Stored records keep the shape the service wrote when it used Powertools' idempotency utility
(attribute names, MD5 hashes of the same JSON, expiry in seconds and claim expiry in
milliseconds), so records written before this module replaced it still replay.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypedDict, runtime_checkable

from chalicelib.problems import Problem, unavailable
from chalicelib.store import aws
from chalicelib.store.failures import from_aws_error
from chalicelib.store.layout import Key, idempotency_key
from chalicelib.store.writes import CompanionRefused, ConditionNotMet, applied, conditional
from chalicelib.util import clock, jsonutil, metrics

EXPIRES_AFTER_SECONDS = 24 * 60 * 60
# How long a claim lasts where no Lambda context says how long the invocation may run (the local
# stack's and the test client's contexts do; this is the safety net). Matches lambda_timeout.
IN_PROGRESS_BUDGET_MS = 15_000

# Attribute names (those of the records written before, see the module's docstring).
STATUS_ATTR = "status"
EXPIRY_ATTR = "ttl"  # seconds since the epoch; the table's TTL attribute
CLAIM_EXPIRY_ATTR = "in_progress_expiration"  # milliseconds since the epoch
RESPONSE_ATTR = "data"
PAYLOAD_ATTR = "validation"
OWNER_ATTR = "owner"
INPROGRESS = "INPROGRESS"
COMPLETED = "COMPLETED"

# A claim refused by a record that has expired by the time the refusal is read (it was live at the
# instant the claim was asked for) is asked for once more; after that the key is "in progress".
_CLAIM_ATTEMPTS = 2


class Outcome(TypedDict):
    """A response to remember and replay: status, JSON text of the body, headers."""

    status: int
    body: str
    headers: dict[str, str]


@runtime_checkable
class RemainingTime(Protocol):
    """What a claim needs of a Lambda context."""

    def get_remaining_time_in_millis(self) -> int: ...


class _Budget:
    """A stand-in Lambda context: a fixed time budget from when the request started."""

    def __init__(self, milliseconds: int) -> None:
        self._deadline = clock.monotonic() + milliseconds / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - clock.monotonic()) * 1000))


def _claim_budget(lambda_context: object) -> RemainingTime:
    """How long a claim may last: the invocation's remaining time, else ``IN_PROGRESS_BUDGET_MS``."""
    if isinstance(lambda_context, RemainingTime):
        return lambda_context
    return _Budget(IN_PROGRESS_BUDGET_MS)


def _digest(value: object) -> str:
    """MD5 of the value's sorted JSON: a record's name and fingerprint, not a secret."""
    return hashlib.md5(json.dumps(value, sort_keys=True).encode(), usedforsecurity=False).hexdigest()


def key_hash(route: str, key: str) -> str:
    return _digest([route, key])


def payload_hash(body: object) -> str:
    """Key order does not make two bodies different; the hashed text is the canonical body's."""
    return _digest(jsonutil.dumps(_canonical(body)))


def _canonical(value: object) -> object:
    if isinstance(value, dict):
        return {k: _canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


# Attribute values and records as DynamoDB's wire format spells them (``layout.Key`` is one).
Value = dict[str, str]
Record = dict[str, Value]


def _text(value: str) -> Value:
    return {"S": value}


def _number(value: int) -> Value:
    return {"N": str(value)}


def _in_progress() -> Problem:
    metrics.count(metrics.IDEMPOTENCY, "IdempotencyConflicts")
    return Problem(
        "conflict",
        "a request with this Idempotency-Key is still in progress; retry later",
        headers={"Retry-After": "1"},
    )


def _reused() -> Problem:
    metrics.count(metrics.IDEMPOTENCY, "IdempotencyConflicts")
    return Problem("idempotency-key-reused", "this Idempotency-Key was already used with a different request body")


# Only this run's claim, and only while it is in progress.
_OWN_CLAIM = "#owner = :owner AND #status = :inprogress"


@dataclass
class Claim:
    """One run's claim on one key: taken, then completed (with the write or after it) or released."""

    table: str
    key: Key
    payload: str
    budget: RemainingTime
    token: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    completed_in_transaction: bool = False

    def take(self) -> Outcome | None:
        """Claim the key; None when claimed (or already ours), else the remembered response.

        Raises the 422 for another body and the 409 for a live claim of another run.
        """
        for _attempt in range(_CLAIM_ATTEMPTS):
            now = clock.wall_seconds()
            remaining_ms = self.budget.get_remaining_time_in_millis()
            item: Record = {
                **self.key,
                STATUS_ATTR: _text(INPROGRESS),
                EXPIRY_ATTR: _number(int(now) + EXPIRES_AFTER_SECONDS),
                CLAIM_EXPIRY_ATTR: _number(int(now * 1000) + remaining_ms),
                PAYLOAD_ATTR: _text(self.payload),
                OWNER_ATTR: _text(self.token),
            }
            try:
                conditional(
                    aws.dynamodb().put_item,
                    TableName=self.table,
                    Item=item,
                    # No record, a forgotten one, or a claim whose invocation has run out of time.
                    ConditionExpression=(
                        "attribute_not_exists(#pk) OR #expiry < :now OR "
                        "(#status = :inprogress AND attribute_exists(#claim_expiry) AND #claim_expiry < :now_ms)"
                    ),
                    ExpressionAttributeNames={
                        "#pk": "pk",
                        "#expiry": EXPIRY_ATTR,
                        "#status": STATUS_ATTR,
                        "#claim_expiry": CLAIM_EXPIRY_ATTR,
                    },
                    ExpressionAttributeValues={
                        ":now": _number(int(now)),
                        ":now_ms": _number(int(now * 1000)),
                        ":inprogress": _text(INPROGRESS),
                    },
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except ConditionNotMet as refused:
                answer = self._answer_to(refused.old)
                if answer == "again":
                    continue
                return None if isinstance(answer, str) else answer
            return None
        raise _in_progress()

    def _answer_to(self, old: dict[str, Any] | None) -> Outcome | Literal["ours", "again"]:
        """What the record that refused the claim means: the claim is ours after all, the response
        to replay, or "again" (it looked expired or absent). Raises for another body or a live claim."""
        if old is None:
            return "again"
        status = old.get(STATUS_ATTR)
        if old.get(OWNER_ATTR) == self.token and status == INPROGRESS:
            return "ours"  # an earlier attempt of this very call wrote the claim; its response was lost
        now = clock.wall_seconds()
        claim_expiry = old.get(CLAIM_EXPIRY_ATTR)
        forgotten = int(old.get(EXPIRY_ATTR, 0)) < int(now)
        abandoned = status == INPROGRESS and claim_expiry is not None and int(claim_expiry) < int(now * 1000)
        if forgotten or abandoned:
            return "again"  # it expired between DynamoDB's look and ours: it no longer counts
        if old.get(PAYLOAD_ATTR) != self.payload:
            raise _reused()
        if status == COMPLETED:
            outcome: Outcome = json.loads(str(old[RESPONSE_ATTR]))
            return outcome
        raise _in_progress()

    def _completed(self, outcome: Outcome) -> Record:
        return {
            **self.key,
            STATUS_ATTR: _text(COMPLETED),
            EXPIRY_ATTR: _number(int(clock.wall_seconds()) + EXPIRES_AFTER_SECONDS),
            RESPONSE_ATTR: _text(json.dumps(outcome, sort_keys=True)),
            PAYLOAD_ATTR: _text(self.payload),
            OWNER_ATTR: _text(self.token),
        }

    def completion_record(self, outcome: Outcome) -> dict[str, Any]:
        """The ``Put`` completing this claim with ``outcome``, for the operation's transaction."""
        self.completed_in_transaction = True
        return {
            "Put": {
                "TableName": self.table,
                "Item": self._completed(outcome),
                "ConditionExpression": _OWN_CLAIM,
                "ExpressionAttributeNames": {"#owner": OWNER_ATTR, "#status": STATUS_ATTR},
                "ExpressionAttributeValues": {":owner": _text(self.token), ":inprogress": _text(INPROGRESS)},
            }
        }

    def complete(self, outcome: Outcome) -> bool:
        """Remember ``outcome`` (an operation that wrote it in no transaction); False when the claim
        is no longer this run's (it expired and was taken over)."""
        completed = self._completed(outcome)
        return applied(
            aws.dynamodb().update_item,
            TableName=self.table,
            Key=self.key,
            UpdateExpression="SET #status = :status, #expiry = :expiry, #response = :response, #payload = :payload"
            " REMOVE #claim_expiry",
            # Only the owner; not "in progress", so a retry of an applied update is no failure.
            ConditionExpression="#owner = :owner",
            ExpressionAttributeNames={
                "#status": STATUS_ATTR,
                "#expiry": EXPIRY_ATTR,
                "#response": RESPONSE_ATTR,
                "#payload": PAYLOAD_ATTR,
                "#claim_expiry": CLAIM_EXPIRY_ATTR,
                "#owner": OWNER_ATTR,
            },
            ExpressionAttributeValues={
                ":status": completed[STATUS_ATTR],
                ":expiry": completed[EXPIRY_ATTR],
                ":response": completed[RESPONSE_ATTR],
                ":payload": completed[PAYLOAD_ATTR],
                ":owner": completed[OWNER_ATTR],
            },
        )

    def release(self) -> bool:
        """Free the key after a failure; False when there was nothing of ours to free (no claim,
        another run's claim, or a completed record)."""
        return applied(
            aws.dynamodb().delete_item,
            TableName=self.table,
            Key=self.key,
            ConditionExpression=_OWN_CLAIM,
            ExpressionAttributeNames={"#owner": OWNER_ATTR, "#status": STATUS_ATTR},
            ExpressionAttributeValues={":owner": _text(self.token), ":inprogress": _text(INPROGRESS)},
        )


_active: contextvars.ContextVar[Claim | None] = contextvars.ContextVar("idempotent_claim", default=None)


def completion_record(outcome: Outcome) -> dict[str, Any] | None:
    """The ``TransactWriteItems`` entry completing the running idempotent request with ``outcome``.

    None outside an idempotent run. An operation that writes its one record in a transaction
    together with this entry makes the write and the remembered response atomic. (A plain dict,
    as the repositories' ``Completion`` callbacks return it.)
    """
    claim = _active.get()
    return claim.completion_record(outcome) if claim is not None else None


def run(
    *,
    table: str,
    tenant: str,
    route: str,
    key: str,
    body: object,
    operation: Callable[[], Outcome],
    lambda_context: object = None,
) -> tuple[Outcome, bool]:
    """Run ``operation`` once per (tenant, route, key); returns ``(outcome, replayed)``."""
    claim = Claim(table, idempotency_key(tenant, key_hash(route, key)), payload_hash(body), _claim_budget(lambda_context))
    try:
        remembered = claim.take()
    except Exception as exc:
        if from_aws_error(exc) is None:
            raise  # a Problem (422, 409), or not a capacity or time problem: a bug or a misconfiguration
        # The claim may have been written before its answer was lost: free the key now if the store
        # lets us, else the claim expires.
        _release(claim, exc)
        raise unavailable("the idempotency store is busy; retry with the same key") from exc
    if remembered is not None:
        return remembered, True

    active = _active.set(claim)
    try:
        outcome = operation()
    except CompanionRefused as exc:
        # The claim expired and another request took it over; nothing was written.
        raise _in_progress() from exc
    except Exception as exc:
        _release(claim, exc)  # failures are not remembered: the client may retry with the key
        raise
    finally:
        _active.reset(active)

    if not claim.completed_in_transaction:
        try:
            claim.complete(outcome)
        except Exception as exc:
            if from_aws_error(exc) is None:
                raise
            # The operation completed; only remembering its response failed. The claim stays until
            # it expires (a retry meanwhile is told "in progress"), and the client gets its answer.
    return outcome, False


def _release(claim: Claim, failure: Exception) -> None:
    """Release after ``failure``; when the store refuses that too, 503 (the claim will expire)."""
    try:
        claim.release()
    except Exception as exc:
        if from_aws_error(exc) is None:
            raise
        raise unavailable("the idempotency store is busy; retry with the same key") from failure
