"""Per-API-key rate limiting (API.md "Rate limiting").

Each key may make ``RATE_LIMIT_RPS`` requests per second with bursts up to ``RATE_LIMIT_BURST``.
``RATE_LIMIT_RPS=0`` (the default) disables the limiter: then it costs one comparison and makes
no call at all, so the simple routes stay at one DynamoDB call each. ``RATE_LIMIT_BURST=0`` with
a positive rate means "no burst beyond one second's worth": ``ceil(RATE_LIMIT_RPS)``.

Algorithm: GCRA, the generic cell rate algorithm — a token bucket kept as a single number, the
key's *theoretical arrival time* (TAT). With ``T = 1 / rps`` and burst ``B``, a request at
``now`` is admitted iff ``max(TAT, now) + T - now <= B * T``, and admitting it sets
``TAT = max(TAT, now) + T``. A refused request changes nothing, so a flood cannot push a key's
recovery further out.

Where the TAT lives: one DynamoDB item per key (``pk = RATE#<key id>``, ``sk = RATE``, with a
``ttl`` so idle keys' items disappear), so the limit holds per key across every Lambda container
of a deployed stage — not per container — as well as in the local stack and the tests. Each
process remembers the last TAT it saw per key. The TAT never decreases, so that memory is a
lower bound of the truth:

- when the remembered TAT already refuses the request, it is refused without calling DynamoDB
  (floods cost the database nothing);
- otherwise one conditional ``UpdateItem`` writes the new TAT: a compare-and-set on the
  remembered value, or, when the bucket is full (TAT in the past), on the stored TAT still being
  in the past;
- when another container moved the TAT in between, the failed condition hands back the stored
  TAT (``ReturnValuesOnConditionCheckFailure``) and the decision is taken again, at most
  ``MAX_ATTEMPTS`` times.

Per-request cost when enabled: one ``UpdateItem`` (1 write unit, a few milliseconds) for an
admitted request; none for a request refused from memory; one more for each interleaving write
from another container. In a deployed stage, API Gateway's stage throttling (set by the deploy
step) caps the whole API in front of this, so requests the limiter never sees (unauthenticated
ones included) are bounded too.

Failure policy: if the limiter's own write fails for lack of capacity or time (throttled, timed
out), the request is admitted and the failure logged — rate limiting protects the service, and
refusing every request because the limiter is briefly unavailable would be the outage it exists
to prevent. The request itself still meets the database's own back-pressure (503).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Any

from chalicelib.config.settings import ConfigurationError, Settings, require
from chalicelib.problems import Problem
from chalicelib.store import aws, layout
from chalicelib.store.failures import from_aws_error
from chalicelib.store.writes import ConditionNotMet, conditional
from chalicelib.util import clock
from chalicelib.util.observability import logger

MAX_ATTEMPTS = 4
MAX_REMEMBERED_KEYS = 10_000
# Keep a key's item this long after its TAT: once the TAT is past, the item and its absence mean
# the same thing (a full bucket).
TTL_MARGIN_SECONDS = 60
_MICROSECOND = Decimal("0.000001")

_remembered: dict[str, Decimal] = {}
_remembered_lock = threading.Lock()


@dataclass(frozen=True)
class Limit:
    """A rate: ``period`` seconds between requests on average, up to ``burst`` at once."""

    period: Decimal
    burst: int

    @property
    def tolerance(self) -> Decimal:
        return self.period * self.burst


def limit_of(settings: Settings) -> Limit:
    """The stage's limit; only meaningful when rate limiting is enabled (``RATE_LIMIT_RPS > 0``)."""
    rps, burst = settings.rate_limit_rps, settings.rate_limit_burst
    if not (rps > 0 and math.isfinite(rps)) or burst < 0:
        raise ConfigurationError("RATE_LIMIT_RPS must be a positive number and RATE_LIMIT_BURST not negative")
    period = (Decimal(1) / Decimal(str(rps))).quantize(_MICROSECOND, rounding=ROUND_CEILING)
    return Limit(period=max(period, _MICROSECOND), burst=burst or max(1, math.ceil(rps)))


@dataclass(frozen=True)
class Decision:
    admitted: bool
    retry_after: int = 0


def _remember(key_id: str, tat: Decimal) -> None:
    with _remembered_lock:
        if len(_remembered) >= MAX_REMEMBERED_KEYS and key_id not in _remembered:
            _remembered.clear()
        previous = _remembered.get(key_id)
        if previous is None or tat > previous:
            _remembered[key_id] = tat


def forget_all() -> None:
    """Drop every remembered TAT (the stored ones stay authoritative)."""
    with _remembered_lock:
        _remembered.clear()


def _refusal(tat: Decimal, now: Decimal, limit: Limit) -> Decision:
    wait = tat + limit.period - limit.tolerance - now
    return Decision(admitted=False, retry_after=max(1, math.ceil(wait)))


class RateLimiter:
    """GCRA over one DynamoDB item per key; see the module docstring."""

    def __init__(self, table: str, limit: Limit, clock: Callable[[], float] = clock.wall_seconds) -> None:
        self.table = table
        self.limit = limit
        self.clock = clock

    def decide(self, key_id: str) -> Decision:
        now = Decimal(repr(self.clock())).quantize(_MICROSECOND)
        with _remembered_lock:
            known = _remembered.get(key_id)
        for _attempt in range(MAX_ATTEMPTS):
            if known is not None and known > now:
                if known + self.limit.period - now > self.limit.tolerance:
                    return _refusal(known, now, self.limit)
                new_tat = known + self.limit.period
                condition, values = "tat = :known", {":known": {"N": str(known)}}
            else:
                new_tat = now + self.limit.period
                condition, values = "attribute_not_exists(tat) OR tat <= :now", {":now": {"N": str(now)}}
            try:
                conditional(
                    aws.dynamodb().update_item,
                    TableName=self.table,
                    Key=layout.rate_key(key_id),
                    UpdateExpression="SET tat = :tat, #ttl = :ttl",
                    ConditionExpression=condition,
                    ExpressionAttributeNames={"#ttl": "ttl"},
                    ExpressionAttributeValues={
                        ":tat": {"N": str(new_tat)},
                        ":ttl": {"N": str(math.ceil(new_tat) + TTL_MARGIN_SECONDS)},
                        **values,
                    },
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except ConditionNotMet as failed:
                stored = (failed.old or {}).get("tat")
                known = Decimal(stored) if stored is not None else None
                if known is not None:
                    _remember(key_id, known)
                continue
            _remember(key_id, new_tat)
            return Decision(admitted=True)
        # Other containers keep winning the race for this key: it is being used far above its rate.
        return Decision(admitted=False, retry_after=max(1, math.ceil(self.limit.period)))


def refusal(context: dict[str, Any] | None, settings: Settings) -> Problem | None:
    """The 429 problem for this request, or None to let it through.

    ``context`` is the request context; the key is the authorizer's ``key_id``, so requests that
    were not authenticated by a key (health, the OpenAPI document) are never limited here. This
    runs in middleware, outside the views' problem boundary, so it never raises: a misconfigured
    stage or a bug is an ``internal-error`` problem, a briefly unavailable database admits.
    """
    if settings.rate_limit_rps == 0:
        return None
    key_id = ((context or {}).get("authorizer") or {}).get("key_id")
    if not key_id:
        return None
    try:
        limiter = RateLimiter(require(settings.table_name, "TABLE_NAME"), limit_of(settings))
        decision = limiter.decide(str(key_id))
    except Exception as exc:  # this runs outside the views' problem boundary
        if from_aws_error(exc) is not None:
            logger().warning("rate limiter unavailable; request admitted", error=str(exc))
            return None
        logger().exception("rate limiter failed")
        return Problem("internal-error", "the rate limiter failed: the stage is misconfigured or this is a bug")
    if decision.admitted:
        return None
    return Problem(
        "rate-limited",
        "this API key is over its request rate; retry after the time in Retry-After",
        headers={"Retry-After": str(decision.retry_after)},
    )
