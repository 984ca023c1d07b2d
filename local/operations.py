"""The local stack's operations view: the functions' EMF lines, queue depths, imports and cleanup runs.

In AWS, CloudWatch reads the embedded metric format (EMF) lines the functions write to their logs
(chalicelib/util/metrics.py). Locally the worker pool hands every line a function writes to
``Operations.feed`` (``local/lambdas.py``), which keeps what the front end's Operations page plots:

- requests per second (the API family's ``Requests``), for the last ``WINDOW_SECONDS``;
- latency p50/p95/p99 by route, over the last ``LATENCY_SAMPLES`` requests of each route;
- problems by type (``Problems`` by ``ProblemType``), since the stack started;
- queue and dead-letter queue depths, sampled every second (``sample_queues``);
- imports in flight with their progress (read from the table through the due index, a Query);
- the last cleanup runs (``CleanupRuns``, ``CleanupDuration``, ``CleanupLag``, ``CleanupDeleted``).

The front end's server serves ``snapshot()`` as ``/operations.json`` on 127.0.0.1 only
(``local/frontend.py``); nothing here is deployed.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any

WINDOW_SECONDS = 120
LATENCY_SAMPLES = 500
CLEANUP_RUNS = 10


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (as CloudWatch's pNN of the raw values)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * share // 100))
    return ordered[int(rank) - 1]


def _values(record: dict[str, Any], name: str) -> list[float]:
    value = record.get(name)
    if value is None:
        return []
    return [float(v) for v in value] if isinstance(value, list) else [float(value)]


class Operations:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._requests: dict[int, float] = defaultdict(float)  # second -> requests
        self._latency: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=LATENCY_SAMPLES))
        self._problems: dict[str, float] = defaultdict(float)
        self._queues: deque[dict[str, Any]] = deque(maxlen=WINDOW_SECONDS)
        self._cleanups: dict[int, dict[str, Any]] = {}  # EMF timestamp -> run
        self._imports: list[dict[str, Any]] = []
        self.lines = 0

    # -- input ----------------------------------------------------------------------------------
    def feed(self, line: str) -> bool:
        """One line a function wrote; True when it was an EMF record this view reads."""
        if not line.startswith('{"_aws"'):
            return False
        try:
            record = json.loads(line)
            stamp = int(record["_aws"]["Timestamp"])
        except (ValueError, KeyError, TypeError):
            return False
        with self._lock:
            self.lines += 1
            self._read(record, stamp)
        return True

    def _read(self, record: dict[str, Any], stamp: int) -> None:
        route = f"{record.get('Method', '')} {record.get('Route', '')}".strip()
        requests = _values(record, "Requests")
        if requests:
            self._requests[stamp // 1000] += sum(requests)
        latencies = _values(record, "Latency")
        if route and latencies:
            self._latency[route].extend(latencies)
        for count in _values(record, "Problems"):
            self._problems[str(record.get("ProblemType"))] += count
        if "CleanupRuns" in record or "CleanupDeleted" in record:
            run = self._cleanups.setdefault(stamp, {"at": stamp, "deleted": {}, "duration_ms": None, "lag_seconds": None})
            if "CleanupDuration" in record:
                run["duration_ms"] = max(_values(record, "CleanupDuration"))
                run["lag_seconds"] = max(_values(record, "CleanupLag"))
            if "CleanupDeleted" in record:
                run["deleted"][str(record.get("Kind"))] = sum(_values(record, "CleanupDeleted"))
            for old in sorted(self._cleanups)[:-CLEANUP_RUNS]:
                del self._cleanups[old]

    def sample_queues(self, depths: dict[str, int]) -> None:
        with self._lock:
            self._queues.append({"at": int(self.clock() * 1000), **depths})

    def set_imports(self, imports: list[dict[str, Any]]) -> None:
        with self._lock:
            self._imports = imports

    # -- output ---------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        now = int(self.clock())
        with self._lock:
            for second in [s for s in self._requests if s < now - WINDOW_SECONDS]:
                del self._requests[second]
            requests = [{"at": s, "count": self._requests.get(s, 0.0)} for s in range(now - WINDOW_SECONDS + 1, now + 1)]
            latency = [
                {"route": route, "count": len(values), "p50": percentile(list(values), 50),
                 "p95": percentile(list(values), 95), "p99": percentile(list(values), 99)}
                for route, values in sorted(self._latency.items()) if values
            ]
            return {
                "now": now,
                "requests_per_second": requests,
                "latency_by_route": latency,
                "problems_by_type": dict(sorted(self._problems.items())),
                "queue_depths": list(self._queues),
                "imports_in_flight": list(self._imports),
                "cleanup_runs": [self._cleanups[k] for k in sorted(self._cleanups, reverse=True)],
                "emf_lines": self.lines,
            }


def queue_depths(sqs: Any, queues: dict[str, str]) -> dict[str, int]:
    """Visible plus in-flight messages of each named queue (name -> URL)."""
    depths = {}
    for name, url in queues.items():
        attributes = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        depths[name] = int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])
    return depths


def imports_in_flight(table: str, limit: int = 20) -> list[dict[str, Any]]:
    """Imports waiting for their file or processing: each is in the due index until it ends, so a
    Query per shard finds them (never a Scan), then one read each for its progress."""
    from chalicelib.imports import repository
    from chalicelib.store import aws, due, layout

    found: list[dict[str, Any]] = []
    for shard in due.shards():
        pages = aws.dynamodb().get_paginator("query").paginate(
            TableName=table, IndexName=layout.DUE_INDEX, KeyConditionExpression="due_pk = :shard",
            ExpressionAttributeValues={":shard": {"S": shard}},
        )
        for page in pages:
            for key in page.get("Items", []):
                tenant, kind = layout.tenant_of(key["pk"]["S"]), layout.kind_of(key["sk"]["S"])
                if tenant is None or kind is None or kind[0] is not layout.Kind.IMPORT:
                    continue
                record = repository.get(table, tenant, kind[1])
                if record is None or record.status not in ("pending_upload", "processing"):
                    continue
                found.append({
                    "id": record.id, "status": record.status, "format": record.format,
                    "rows_total": record.rows_total, "rows_imported": record.rows_imported,
                    "rows_failed": record.rows_failed, "created_at": record.created_at,
                })
                if len(found) >= limit:
                    return found
    return found


class Sampler:
    """Samples queue depths and imports in flight every ``interval`` seconds until stopped."""

    def __init__(self, operations: Operations, sample: Callable[[], None], interval: float = 1.0) -> None:
        self.operations = operations
        self.sample = sample
        self.interval = interval
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="operations", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.sample()
            except Exception as exc:  # the emulator is busy or stopping: the next sample tries again
                if not self.stopping.is_set():
                    print(f"[stack] operations sample skipped: {type(exc).__name__}: {exc}", flush=True)
            self.stopping.wait(self.interval)

    def stop(self) -> None:
        """No wait: a sample under way ends by itself (the thread is a daemon), the stack stops now."""
        self.stopping.set()
