"""``Idempotency-Key`` for creating requests, on Powertools' idempotency utility.

Records live in the tenant's partition (``pk = T#<tenant>``, ``sk = IDEMPOTENCY#<hash>``), so keys
are scoped to the tenant by construction. The key hash covers the route and the key; the payload
hash covers the canonical body, so the same key with another body is told apart (422), a request
still in flight is refused (409), and a completed one is replayed. Failed requests (problems,
errors) are not remembered, so the client may retry them with the same key.

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
  behind by a crash blocks its key for seconds, not for the record's 24 hours.

Powertools is imported here, on first use, so requests without the header never pay for it.
"""

from __future__ import annotations

import contextvars
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.problems import Problem, unavailable
from chalicelib.store import aws
from chalicelib.store.failures import from_aws_error
from chalicelib.store.layout import IDEMPOTENCY_PREFIX, tenant_pk
from chalicelib.store.writes import CompanionRefused, is_condition_failure
from chalicelib.util import clock, jsonutil

EXPIRES_AFTER_SECONDS = 24 * 60 * 60
# How long a claim lasts where no Lambda context says how long the invocation may run (the local
# stack's and the test client's contexts do; this is the safety net). Matches lambda_timeout.
IN_PROGRESS_BUDGET_MS = 15_000
OWNER_ATTR = "owner"
STATUS_ATTR = "status"
INPROGRESS = "INPROGRESS"
COMPLETED = "COMPLETED"

_replayed: contextvars.ContextVar[bool] = contextvars.ContextVar("idempotent_replayed", default=False)

Outcome = dict[str, Any]  # {"status": int, "body": str (JSON text), "headers": {...}}


class _Budget:
    """A stand-in Lambda context: a fixed time budget from when the request started."""

    def __init__(self, milliseconds: int) -> None:
        self._deadline = clock.monotonic() + milliseconds / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - clock.monotonic()) * 1000))


class _ClaimClient:
    """The DynamoDB client Powertools uses for one run: claims carry the run's token.

    Powertools claims with ``PutItem`` (conditional on no live record), releases with
    ``DeleteItem`` and completes with ``UpdateItem``; those three are adjusted here, everything
    else passes through.
    """

    def __init__(self, client: Any, token: str) -> None:
        self._client = client
        self.token = token
        self.completed_in_transaction = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def put_item(self, **kwargs: Any) -> Any:
        kwargs["Item"] = {**kwargs["Item"], OWNER_ATTR: {"S": self.token}}
        try:
            return self._client.put_item(**kwargs)
        except ClientError as exc:
            old: Any = exc.response.get("Item") or {}
            if is_condition_failure(exc) and old.get(OWNER_ATTR, {}).get("S") == self.token:
                # An earlier attempt of this very call wrote the claim; its response was lost.
                return {}
            raise

    def delete_item(self, **kwargs: Any) -> Any:
        """Release the claim only if it is still this run's and still in progress."""
        try:
            return self._client.delete_item(
                **kwargs,
                ConditionExpression="#owner = :owner AND #status = :inprogress",
                ExpressionAttributeNames={"#owner": OWNER_ATTR, "#status": STATUS_ATTR},
                ExpressionAttributeValues={":owner": {"S": self.token}, ":inprogress": {"S": INPROGRESS}},
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return {}
            raise

    def update_item(self, **kwargs: Any) -> Any:
        if self.completed_in_transaction:
            return {}  # the record was completed together with the operation's own write
        return self._client.update_item(**kwargs)


@dataclass
class _Run:
    persistence: Any
    claims: _ClaimClient
    request: dict[str, Any]
    outcome: Outcome | None = None

    def completion_record(self, outcome: Outcome) -> dict[str, Any]:
        persistence = self.persistence
        key = persistence._get_hashed_idempotency_key(self.request)
        item = {
            **persistence._get_key(key),
            persistence.expiry_attr: {"N": str(persistence._get_expiry_timestamp())},
            persistence.status_attr: {"S": COMPLETED},
            persistence.data_attr: {"S": json.dumps(outcome, sort_keys=True)},
            persistence.validation_key_attr: {"S": persistence._get_hashed_payload(self.request)},
            OWNER_ATTR: {"S": self.claims.token},
        }
        self.claims.completed_in_transaction = True
        return {
            "Put": {
                "TableName": persistence.table_name,
                "Item": item,
                "ConditionExpression": "#owner = :owner AND #status = :inprogress",
                "ExpressionAttributeNames": {"#owner": OWNER_ATTR, "#status": persistence.status_attr},
                "ExpressionAttributeValues": {":owner": {"S": self.claims.token}, ":inprogress": {"S": INPROGRESS}},
            }
        }

    def release(self) -> None:
        """Best effort, after a failure of the idempotency store itself: free the key at once."""
        try:
            self.persistence.delete_record(data=self.request, exception=RuntimeError("released"))
        except Exception as exc:  # the store is failing already; the claim will expire
            if from_aws_error(exc) is None:
                raise


_active: contextvars.ContextVar[_Run | None] = contextvars.ContextVar("idempotent_run", default=None)


def completion_record(outcome: Outcome) -> dict[str, Any] | None:
    """The ``TransactWriteItems`` entry completing the running idempotent request with ``outcome``.

    None outside an idempotent run. An operation that writes its one record in a transaction
    together with this entry makes the write and the remembered response atomic.
    """
    run_state = _active.get()
    return run_state.completion_record(outcome) if run_state is not None else None


def run(
    *,
    table: str,
    tenant: str,
    route: str,
    key: str,
    body: Any,
    operation: Callable[[], Outcome],
    lambda_context: Any = None,
) -> tuple[Outcome, bool]:
    """Run ``operation`` once per (tenant, route, key); returns ``(outcome, replayed)``."""
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyInconsistentStateError,
        IdempotencyPersistenceLayerError,
        IdempotencyValidationError,
    )

    def mark_replayed(response: Any, _record: Any) -> Any:  # Powertools' IdempotentHookFunction
        _replayed.set(True)
        return response

    config = IdempotencyConfig(
        event_key_jmespath="[route, key]",
        payload_validation_jmespath="body",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=EXPIRES_AFTER_SECONDS,
        response_hook=mark_replayed,  # type: ignore[arg-type]
    )
    if lambda_context is None or not hasattr(lambda_context, "get_remaining_time_in_millis"):
        lambda_context = _Budget(IN_PROGRESS_BUDGET_MS)
    # Lets an in-flight record expire when the invocation that wrote it has timed out.
    config.register_lambda_context(lambda_context)
    claims = _ClaimClient(aws.dynamodb(), secrets.token_urlsafe(16))
    persistence = DynamoDBPersistenceLayer(
        table_name=table,
        key_attr="pk",
        sort_key_attr="sk",
        static_pk_value=tenant_pk(tenant),
        expiry_attr="ttl",
        status_attr=STATUS_ATTR,
        boto3_client=claims,  # type: ignore[arg-type]
    )

    def execute(request: dict[str, Any]) -> Outcome:
        state.outcome = operation()
        return state.outcome

    guarded = idempotent_function(
        data_keyword_argument="request",
        persistence_store=persistence,
        config=config,
        key_prefix=IDEMPOTENCY_PREFIX,
    )(execute)
    request = {"route": route, "key": key, "body": jsonutil.dumps(_canonical(body))}
    state = _Run(persistence, claims, request)
    replayed_token = _replayed.set(False)
    active_token = _active.set(state)
    try:
        outcome: Outcome = guarded(request=request)
        return outcome, _replayed.get()
    except IdempotencyValidationError as exc:
        raise Problem(
            "idempotency-key-reused",
            "this Idempotency-Key was already used with a different request body",
        ) from exc
    except (IdempotencyAlreadyInProgressError, CompanionRefused) as exc:
        raise Problem(
            "conflict",
            "a request with this Idempotency-Key is still in progress; retry later",
            headers={"Retry-After": "1"},
        ) from exc
    except (IdempotencyPersistenceLayerError, IdempotencyInconsistentStateError) as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, Exception) else exc
        if isinstance(exc, IdempotencyPersistenceLayerError) and from_aws_error(cause) is None:
            raise  # not a capacity or time problem: a bug or a misconfiguration, logged as such
        if state.outcome is not None:
            # The operation completed; only remembering its response failed. The claim stays until
            # it expires (a retry meanwhile is told "in progress"), and the client gets its answer.
            return state.outcome, False
        # Claiming failed (the operation did not run), or the operation failed and its claim could
        # not be released: free the key now if the store lets us, else the claim expires.
        state.release()
        raise unavailable("the idempotency store is busy; retry with the same key") from exc
    finally:
        _active.reset(active_token)
        _replayed.reset(replayed_token)


def _canonical(value: Any) -> Any:
    """Key order does not make two bodies different."""
    if isinstance(value, dict):
        return {k: _canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value
