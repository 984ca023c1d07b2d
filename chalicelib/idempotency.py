"""``Idempotency-Key`` for creating requests, on Powertools' idempotency utility.

Records live in the tenant's partition (``pk = T#<tenant>``, ``sk = IDEMPOTENCY#<hash>``), so keys
are scoped to the tenant by construction. The key hash covers the route and the key; the payload
hash covers the canonical body, so the same key with another body is told apart (422), a request
still in flight is refused (409), and a completed one is replayed. Failed requests (problems,
errors) are not remembered, so the client may retry them with the same key.

Powertools is imported here, on first use, so requests without the header never pay for it.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

from chalicelib import aws, jsonutil
from chalicelib.dynamo import tenant_pk
from chalicelib.problems import Problem, unavailable

EXPIRES_AFTER_SECONDS = 24 * 60 * 60

_replayed: contextvars.ContextVar[bool] = contextvars.ContextVar("idempotent_replayed", default=False)

Outcome = dict[str, Any]  # {"status": int, "body": str (JSON text), "headers": {...}}


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
    if lambda_context is not None and hasattr(lambda_context, "get_remaining_time_in_millis"):
        # Lets an in-flight record expire when the invocation that wrote it has timed out.
        config.register_lambda_context(lambda_context)
    persistence = DynamoDBPersistenceLayer(
        table_name=table,
        key_attr="pk",
        sort_key_attr="sk",
        static_pk_value=tenant_pk(tenant),
        expiry_attr="ttl",
        boto3_client=aws.dynamodb(),
    )

    def execute(request: dict[str, Any]) -> Outcome:
        return operation()

    guarded = idempotent_function(
        data_keyword_argument="request",
        persistence_store=persistence,
        config=config,
        key_prefix="IDEMPOTENCY",
    )(execute)
    request = {"route": route, "key": key, "body": jsonutil.dumps(_canonical(body))}
    token = _replayed.set(False)
    try:
        outcome: Outcome = guarded(request=request)
        return outcome, _replayed.get()
    except IdempotencyValidationError as exc:
        raise Problem(
            "idempotency-key-reused",
            "this Idempotency-Key was already used with a different request body",
        ) from exc
    except IdempotencyAlreadyInProgressError as exc:
        raise Problem(
            "conflict",
            "a request with this Idempotency-Key is still in progress; retry later",
            headers={"Retry-After": "1"},
        ) from exc
    except IdempotencyPersistenceLayerError as exc:
        # The idempotency store could not be read or written (throttled, timed out): nothing ran.
        raise unavailable("the idempotency store is busy; retry with the same key") from exc
    finally:
        _replayed.reset(token)


def _canonical(value: Any) -> Any:
    """Key order does not make two bodies different."""
    if isinstance(value, dict):
        return {k: _canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value
