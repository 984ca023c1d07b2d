"""Metrics as CloudWatch embedded metric format (EMF) log lines, written by Powertools Metrics.

One catalog (``FAMILIES``) names every metric the service writes, with its unit and dimension
sets; the code records through it and the infrastructure test checks every alarm against it, so
an alarm can never watch a metric nobody writes. Dimensions are low-cardinality by construction:
a route template, a method, a problem type, a cleanup kind, never a tenant, key or id (``record``
refuses any dimension its family does not declare).

Values are buffered per invocation and written by ``flush()``, which every entry point calls in a
``finally`` (docs/OPERATIONS.md lists the metrics and what to do about each). The namespace is per
stage: ``ItemsService/<STAGE>``.

The lines are written here, not by Powertools Metrics: the authorizer, the function with the
tightest cold-start budget, loads no Powertools at all (it writes no log line on success), and
Powertools would add about 40 modules and 9 ms to it (``python -X importtime``, after botocore).
The format is a few keys of JSON; a unit test checks every family's line against Powertools' own
serialiser (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

NAMESPACE_PREFIX = "ItemsService"
SERVICE = "items-service"
SERVICE_DIMENSION = "service"

COUNT = "Count"
MILLISECONDS = "Milliseconds"
SECONDS = "Seconds"


@dataclass(frozen=True)
class Family:
    """Metrics written together, each under every one of the family's dimension sets."""

    name: str
    units: dict[str, str]
    dimension_sets: tuple[tuple[str, ...], ...]

    @functools.cached_property
    def dimensions(self) -> frozenset[str]:
        """The dimension names ``record`` takes (computed once: every recorded value checks them)."""
        return frozenset(d for dims in self.dimension_sets for d in dims if d != SERVICE_DIMENSION)


_SERVICE: tuple[str, ...] = (SERVICE_DIMENSION,)

API = Family(
    "api",
    {"Requests": COUNT, "Latency": MILLISECONDS, "ClientErrors": COUNT, "ServerErrors": COUNT},
    (_SERVICE, (SERVICE_DIMENSION, "Route", "Method")),
)
PROBLEMS = Family(
    "problems",
    {"Problems": COUNT},
    ((SERVICE_DIMENSION, "ProblemType"), (SERVICE_DIMENSION, "Route", "Method", "ProblemType")),
)
AUTHORIZER = Family("authorizer", {"AuthorizerAllow": COUNT, "AuthorizerDeny": COUNT, "AuthorizerFailure": COUNT}, (_SERVICE,))
RATE_LIMIT = Family("rate_limit", {"RateLimited": COUNT}, (_SERVICE,))
IDEMPOTENCY = Family("idempotency", {"IdempotentReplays": COUNT, "IdempotencyConflicts": COUNT}, (_SERVICE,))
ATTACHMENTS = Family("attachments", {"AttachmentsReady": COUNT, "AttachmentsRejected": COUNT}, (_SERVICE,))
IMPORTS = Family(
    "imports",
    {"ImportRowsImported": COUNT, "ImportRowsFailed": COUNT, "ImportDuration": SECONDS, "ImportsFailed": COUNT},
    (_SERVICE,),
)
QUEUE = Family("queue", {"QueueMessages": COUNT, "QueueMessagesFailed": COUNT}, (_SERVICE,))
CLEANUP = Family("cleanup", {"CleanupRuns": COUNT, "CleanupDuration": MILLISECONDS, "CleanupLag": SECONDS}, (_SERVICE,))
CLEANUP_DELETED = Family("cleanup_deleted", {"CleanupDeleted": COUNT}, ((SERVICE_DIMENSION, "Kind"),))

FAMILIES: tuple[Family, ...] = (API, PROBLEMS, AUTHORIZER, RATE_LIMIT, IDEMPOTENCY, ATTACHMENTS, IMPORTS, QUEUE,
                                CLEANUP, CLEANUP_DELETED)


def namespace(stage: str | None = None) -> str:
    return f"{NAMESPACE_PREFIX}/{stage or os.environ.get('STAGE') or 'dev'}"


# (namespace, family name, dimension values) -> metric name -> values, until ``flush()``
_pending: dict[tuple[str, str, tuple[tuple[str, str], ...]], dict[str, list[float]]] = {}
_families: dict[str, Family] = {family.name: family for family in FAMILIES}
_lock = threading.Lock()
MAX_VALUES = 100  # EMF: at most 100 values per metric in one line
# ``json.dumps(..., separators=(",", ":"))`` builds an encoder per call; one is enough.
_COMPACT = json.JSONEncoder(separators=(",", ":"))


def record(family: Family, values: dict[str, float], **dimensions: str) -> None:
    """Buffer ``values`` (metric name -> value) under ``dimensions``; written by ``flush()``."""
    unknown = values.keys() - family.units.keys()
    if unknown or dimensions.keys() != family.dimensions:
        raise ValueError(f"{family.name}: metrics {sorted(unknown)} or dimensions {sorted(dimensions)} not declared")
    key = (namespace(), family.name, tuple(sorted(dimensions.items())))
    with _lock:
        pending = _pending.setdefault(key, {})
        for name, value in values.items():
            pending.setdefault(name, []).append(float(value))
        full = any(len(v) >= MAX_VALUES for v in pending.values())
    if full:
        flush()


def count(family: Family, name: str, value: float = 1, **dimensions: str) -> None:
    record(family, {name: value}, **dimensions)


def emf_document(family: Family, dimensions: dict[str, str], values: dict[str, list[float]],
                 timestamp_ms: int, in_namespace: str | None = None) -> dict[str, Any]:
    """One EMF record, as Powertools' ``AmazonCloudWatchEMFProvider`` serialises it (a unit test
    compares the two): every metric of the record under each of the family's dimension sets."""
    return {
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": in_namespace or namespace(),
                "Dimensions": [list(dims) for dims in family.dimension_sets],
                "Metrics": [{"Name": name, "Unit": family.units[name]} for name in values],
            }],
        },
        SERVICE_DIMENSION: SERVICE,
        **dimensions,
        **values,
    }


def flush() -> None:
    """Write every buffered record as one EMF line each, and forget them (safe to call twice)."""
    with _lock:
        pending = list(_pending.items())
        _pending.clear()
    if not pending:
        return
    stamp = int(time.time() * 1000)
    lines = [
        _COMPACT.encode(emf_document(_families[family], dict(dimensions), values, stamp, space))
        for (space, family, dimensions), values in pending
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


F = TypeVar("F", bound=Callable[..., Any])


def flushing(handler: F) -> F:
    """``handler`` writes its invocation's metrics when it returns and when it raises."""

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        finally:
            flush()

    return wrapper  # type: ignore[return-value]
