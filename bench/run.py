"""``make bench``: every performance measure of the service, side by side, against one emulator.

    python -m bench.run            # full sizes (≈ 10 minutes on 2 cores)
    python -m bench.run --smoke    # tiny sizes, run inside `make test` so the benchmark cannot rot

Ratios compare the service with a floor measured in the same run on the same machine, so a noisy
or slow machine moves both sides. Prints a table and writes ``bench/results.json``. The ``peers``
measure (bench/compare.py) puts the apps a user would copy instead (bench/peers/) next to the
service and the floor, interleaved; docs/PERFORMANCE.md explains its figures.

The emulator runs in this process with the speed-up of ``bench/moto_speedups.py`` (moto's
``Query`` costs O(table); DynamoDB's does not). The local stack runs moto unmodified.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"

PACKAGE_BUDGET_BYTES = 12 * 1024 * 1024
TARGETS = {
    ("cold_start", "ratio"): ("<=", 1.3),
    ("warm_request", "ratio"): ("<=", 1.25),
    ("list_scaling", "ratio"): ("<=", 1.25),
    ("finding_scaling", "worst_ratio"): ("<=", 1.25),
    ("cleanup", "ratio"): ("<=", 2.0),
    ("import", "rows_per_write_call"): (">=", 20),
    ("import", "peak_rss_mb"): ("<=", 150),
    # Lambda takes 50 MB zipped; the bound keeps dependencies deliberate. pydantic-core and
    # cryptography (the token signature check) are most of it.
    ("package", "zip_bytes"): ("<=", PACKAGE_BUDGET_BYTES),
    ("import_limits", "invocation_peak_rss_mb"): ("<=", 1024),
    ("import_limits", "projected_total_vs_deadline"): ("<=", 1.0),
    ("mutation", "kill_ratio"): (">=", 0.9),
}


@dataclass(frozen=True)
class Sizes:
    cold_runs: int
    warm_iterations: int
    list_small: int
    list_large: int
    list_runs: int
    cleanup_live: int
    cleanup_expired: int
    import_rows: int
    limit_rows: int = 100_000
    peer_rounds: int = 15
    peer_warm_requests: int = 100
    peer_warmup: bool = True  # one unmeasured run of each subject first (the smoke run only checks it runs)


FULL = Sizes(cold_runs=15, warm_iterations=400, list_small=1_000, list_large=50_000, list_runs=30,
             cleanup_live=50_000, cleanup_expired=200, import_rows=100_000)
SMOKE = Sizes(cold_runs=3, warm_iterations=30, list_small=30, list_large=300, list_runs=5,
              cleanup_live=300, cleanup_expired=20, import_rows=300, limit_rows=3_000,
              peer_rounds=1, peer_warm_requests=5, peer_warmup=False)


def median(values: list[float]) -> float:
    return float(statistics.median(values))


class Environment:
    """One emulator with the resources from the template, and the app configured against it."""

    def __init__(self) -> None:
        from bench import moto_speedups
        from local.emulator import Emulator
        from tests.localstack import free_port

        os.environ.update({
            "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
            "CURSOR_SECRETS": "bench-secret", "STAGE": "bench",
        })
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            os.environ.pop(name, None)
        # In this process only: the emulator's queries without moto's O(table) cost
        # (bench/moto_speedups.py says why, and which moto version it was checked against).
        self.speedups = moto_speedups.install() is not None
        self.emulator = Emulator("127.0.0.1", free_port())
        self.emulator.start()
        os.environ["AWS_ENDPOINT_URL"] = self.emulator.endpoint

        import boto3

        from infra import stack

        self.outputs = stack.deploy(boto3.client("cloudformation"), "bench")
        os.environ.update({
            "TABLE_NAME": self.outputs["TableName"],
            "BUCKET_NAME": self.outputs["BucketName"],
            "QUEUE_URL": self.outputs["WorkQueueUrl"],
        })
        self.table = self.outputs["TableName"]

    def close(self) -> None:
        self.emulator.stop()

    def put_items(self, tenant: str, count: int, extra: Callable[[int], dict[str, Any]] | None = None,
                  tags: Callable[[int], list[str]] | None = None) -> None:
        """Bulk-load items straight into the table with their index keys and tag index records, as
        the service writes them (the setup, not the thing measured)."""
        from chalicelib.store import aws, layout
        from chalicelib.store.codec import to_item
        from chalicelib.store.layout import tenant_pk
        from chalicelib.util import clock

        now = clock.now_text()
        client = aws.dynamodb()
        requests: list[dict[str, Any]] = []

        def flush(at_least: int) -> None:
            while len(requests) >= at_least and requests:
                pending: dict[str, Any] = {self.table: requests[:25]}
                del requests[:25]
                while pending:
                    pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}

        for n in range(count):
            item_id = f"{n:08d}"
            item_tags = tags(n) if tags else []
            record = {"pk": tenant_pk(tenant), "sk": f"ITEM#{item_id}", "id": item_id, "name": f"item {n}",
                      "tags": item_tags, "data": {"n": n}, "data_size": 10, "version": 1,
                      "created_at": now, "updated_at": now,
                      layout.NAME_KEY: layout.name_key(f"item {n}", item_id),
                      layout.UPDATED_KEY: layout.updated_key(now, item_id), **(extra(n) if extra else {})}
            requests.append({"PutRequest": {"Item": to_item(record)}})
            requests.extend({"PutRequest": {"Item": layout.tag_key(tenant, tag, item_id)}} for tag in item_tags)
            flush(25)
        flush(1)


def api(method: str, resource: str, path: str, tenant: str, params: dict[str, str] | None = None,
        query: dict[str, str] | None = None, body: Any = None, headers: dict[str, str] | None = None) -> dict[str, Any]:
    import app
    from bench.events import api_event, lambda_context

    event = api_event(method, resource, path, tenant, params, query, json.dumps(body) if body is not None else None)
    event["headers"].update(headers or {})
    response: dict[str, Any] = app.app(event, lambda_context())
    return response


@contextmanager
def counting_calls() -> Iterator[Counter[str]]:
    """Counts the AWS API calls the service's clients make inside the block."""
    from chalicelib.store import aws

    counts: Counter[str] = Counter()

    def count(model: Any, **_kwargs: Any) -> None:
        counts[model.name] += 1

    # Each client copies its session's event hooks when it is created: hook the clients themselves.
    emitters = [client.meta.events for client in (aws.dynamodb(), aws.s3(), aws.sqs())]
    for events in emitters:
        events.register("before-call.*.*", count, unique_id="bench-count")
    try:
        yield counts
    finally:
        for events in emitters:
            events.unregister("before-call.*.*", unique_id="bench-count")


# -- measures ---------------------------------------------------------------------------------

def cold_start(env: Environment, sizes: Sizes) -> dict[str, Any]:
    from chalicelib.config.settings import get_settings
    from chalicelib.items.service import ItemService

    item = ItemService(get_settings()).create("bench-cold", {"name": "cold"})
    child_env = {**os.environ, "BENCH_TENANT": "bench-cold", "BENCH_ITEM": item.id}
    child_env.pop("PYTHONDONTWRITEBYTECODE", None)  # the unmeasured runs below write the bytecode caches
    samples: dict[str, list[float]] = {"app": [], "floor": []}
    for mode in ("app", "floor"):  # one unmeasured run each: bytecode caches written, files in page cache
        subprocess.run([sys.executable, "bench/cold_child.py", mode], cwd=ROOT, env=child_env, check=True,
                       capture_output=True)
    for _ in range(sizes.cold_runs):
        for mode in ("floor", "app"):
            done = subprocess.run([sys.executable, "bench/cold_child.py", mode], cwd=ROOT, env=child_env,
                                  check=True, capture_output=True, text=True)
            samples[mode].append(json.loads(done.stdout.strip().splitlines()[-1])["ms"])
    app_ms, floor_ms = median(samples["app"]), median(samples["floor"])
    return {"app_ms": round(app_ms, 1), "floor_ms": round(floor_ms, 1), "ratio": round(app_ms / floor_ms, 3)}


def warm_request(env: Environment, sizes: Sizes) -> dict[str, Any]:
    from chalicelib.config.settings import get_settings
    from chalicelib.items.service import ItemService
    from chalicelib.store import aws

    item = ItemService(get_settings()).create("bench-warm", {"name": "warm", "data": {"x": 1}})
    key = {"pk": {"S": "T#bench-warm"}, "sk": {"S": f"ITEM#{item.id}"}}
    client = aws.dynamodb()
    app_times, floor_times = [], []
    for _ in range(20):  # warm both paths
        api("GET", "/items/{item_id}", f"/items/{item.id}", "bench-warm", {"item_id": item.id})
        client.get_item(TableName=env.table, Key=key)
    for _ in range(sizes.warm_iterations):
        started = time.perf_counter()
        response = api("GET", "/items/{item_id}", f"/items/{item.id}", "bench-warm", {"item_id": item.id})
        app_times.append(time.perf_counter() - started)
        assert response["statusCode"] == 200
        started = time.perf_counter()
        client.get_item(TableName=env.table, Key=key)
        floor_times.append(time.perf_counter() - started)
    app_us, floor_us = median(app_times) * 1e6, median(floor_times) * 1e6
    return {"app_us": round(app_us), "floor_us": round(floor_us), "ratio": round(app_us / floor_us, 3)}


def list_scaling(env: Environment, sizes: Sizes) -> dict[str, Any]:
    env.put_items("bench-list-small", sizes.list_small)
    env.put_items("bench-list-large", sizes.list_large)

    def first_page(tenant: str) -> float:
        started = time.perf_counter()
        response = api("GET", "/items", "/items", tenant, query={"limit": "20"})
        elapsed = time.perf_counter() - started
        assert response["statusCode"] == 200 and len(json.loads(response["body"])["items"]) == 20
        return elapsed

    small, large = [], []
    for tenant in ("bench-list-small", "bench-list-large"):
        first_page(tenant)
    for _ in range(sizes.list_runs):
        small.append(first_page("bench-list-small"))
        large.append(first_page("bench-list-large"))
    small_ms, large_ms = median(small) * 1000, median(large) * 1000
    return {"small_items": sizes.list_small, "large_items": sizes.list_large, "small_ms": round(small_ms, 2),
            "large_ms": round(large_ms, 2), "ratio": round(large_ms / small_ms, 3)}


FINDING_MODES: dict[str, dict[str, str]] = {
    "tag": {"tag": "bench"},
    "q": {"q": "ITEM 1"},
    "sort_name": {"sort": "name"},
    "sort_updated_at": {"sort": "updated_at", "order": "desc"},
    "sort_id": {"sort": "id"},
}


def finding_scaling(env: Environment, sizes: Sizes) -> dict[str, Any]:
    """A page (limit 20, after the first) of each finding mode, for a small and a large tenant."""
    small, large = "bench-find-small", "bench-find-large"
    env.put_items(small, sizes.list_small, tags=lambda n: ["bench", f"t{n % 7}"])
    env.put_items(large, sizes.list_large, tags=lambda n: ["bench", f"t{n % 7}"])
    cursors: dict[tuple[str, str], str] = {}

    def page(tenant: str, mode: str) -> float:
        query = {**FINDING_MODES[mode], "limit": "20"}
        if (tenant, mode) in cursors:
            query["cursor"] = cursors[(tenant, mode)]
        started = time.perf_counter()
        response = api("GET", "/items", "/items", tenant, query=query)
        elapsed = time.perf_counter() - started
        assert response["statusCode"] == 200, response
        found = json.loads(response["body"])
        assert found["items"], (mode, found)
        if found["next_cursor"]:
            cursors.setdefault((tenant, mode), found["next_cursor"])  # then always the second page
        return elapsed

    result: dict[str, Any] = {"small_items": sizes.list_small, "large_items": sizes.list_large}
    for mode in FINDING_MODES:
        for tenant in (small, large):
            page(tenant, mode)
            page(tenant, mode)
        samples: dict[str, list[float]] = {small: [], large: []}
        for _ in range(sizes.list_runs):
            for tenant in (small, large):
                samples[tenant].append(page(tenant, mode))
        small_ms, large_ms = median(samples[small]) * 1000, median(samples[large]) * 1000
        result[mode] = {"small_ms": round(small_ms, 2), "large_ms": round(large_ms, 2),
                        "ratio": round(large_ms / small_ms, 3)}
    result["worst_ratio"] = max(result[mode]["ratio"] for mode in FINDING_MODES)
    return result


def _attribute_size(value: dict[str, Any]) -> int:
    """Bytes DynamoDB bills for one attribute value (Developer Guide, "Item sizes and formats")."""
    (kind, inner), = value.items()
    if kind in ("S", "B"):
        return len(inner.encode()) if isinstance(inner, str) else len(inner)
    if kind == "N":
        return (len(inner.strip("-").replace(".", "").lstrip("0")) + 1) // 2 + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + _attribute_size(element) for element in inner)
    if kind == "M":
        return 3 + sum(1 + len(name.encode()) + _attribute_size(element) for name, element in inner.items())
    return sum(len(str(element)) for element in inner)  # sets: never written by the service


def item_size(item: dict[str, Any]) -> int:
    return sum(len(name.encode()) + _attribute_size(value) for name, value in item.items())


def _units(item: dict[str, Any]) -> int:
    return max(1, -(-item_size(item) // 1024))


@contextmanager
def write_units() -> Iterator[Counter[str]]:
    """Write capacity units of the service's writes inside the block, by DynamoDB's pricing rules:
    1 WCU per started KB of each record written, 2 in a transaction; every GSI holding the record
    (projection ALL) 1 more per KB, 2 when the write moves the record's key in that index (a delete
    and a put). Records are measured as stored after the write (read back on a client of the
    benchmark's own, not counted). The emulator's own ConsumedCapacity is a constant 1.0 and says
    nothing, so it is modelled here rather than reported."""
    import boto3

    from chalicelib.store import aws, layout

    reader = boto3.client("dynamodb")
    counts: Counter[str] = Counter()
    indexed = {layout.NAME_KEY: layout.NAME_INDEX, layout.UPDATED_KEY: layout.UPDATED_INDEX}

    def stored(table: str, key: dict[str, Any]) -> dict[str, Any]:
        return dict(reader.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item") or {})

    def charge(kind: str, request: dict[str, Any], factor: int) -> None:
        if kind == "Put":
            record = request["Item"]
        else:
            key = request["Key"]
            record = stored(request["TableName"], key) if kind == "Update" else key
        units = _units(record)
        counts["table"] += factor * units
        update = str(request.get("UpdateExpression", ""))
        names = request.get("ExpressionAttributeNames", {})
        for attribute, index in indexed.items():
            if attribute in record:
                moved = kind == "Update" and any(names.get(token) == attribute for token in update.replace(",", " ").split())
                counts[index] += (2 if moved else 1) * units

    seen: list[tuple[str, dict[str, Any]]] = []

    def record(params: dict[str, Any], model: Any, **_kwargs: Any) -> None:
        seen.append((model.name, json.loads(json.dumps(params))))

    events = aws.dynamodb().meta.events
    events.register("provide-client-params.dynamodb.*", record, unique_id="bench-wcu")
    try:
        yield counts
    finally:
        events.unregister("provide-client-params.dynamodb.*", unique_id="bench-wcu")
        for operation, params in seen:  # after the calls: records as they were written
            if operation == "TransactWriteItems":
                for action in params["TransactItems"]:
                    (kind, request), = action.items()
                    if kind != "ConditionCheck":
                        charge(kind, request, 2)
            elif operation in ("PutItem", "UpdateItem", "DeleteItem"):
                charge(operation.removesuffix("Item"), params, 1)
        counts["total"] = sum(counts.values())


def write_cost(_env: Environment, _sizes: Sizes) -> dict[str, Any]:
    """DynamoDB calls and write capacity units of a create, an update that keeps the tags, and an
    update that replaces them all, for an item with 0, 5 and 20 tags."""
    tenant = "bench-write-cost"
    result: dict[str, Any] = {}
    for count in (0, 5, 20):
        tags = [f"tag-{n:02d}" for n in range(count)]
        other = [f"other-{n:02d}" for n in range(count)]
        body = {"name": f"{count} tags", "tags": tags, "data": {"amount": 12.5, "currency": "EUR"}}
        costs: dict[str, Any] = {}
        item_id: str | None = None
        for step, changes in (("create", {}), ("update", {"name": "renamed"}), ("retag", {"tags": other})):
            with counting_calls() as calls, write_units() as units:
                if item_id is None:
                    response = api("POST", "/items", "/items", tenant, body=body)
                else:
                    response = api("PUT", "/items/{item_id}", f"/items/{item_id}", tenant, {"item_id": item_id},
                                   body={**body, **changes})
            assert response["statusCode"] < 300, (step, response)
            item_id = item_id or json.loads(response["body"])["id"]
            costs[f"{step}_calls"] = sum(calls.values())
            costs[f"{step}_wcu"] = units["total"]
        result[f"tags_{count}"] = costs
    return result


def calls_per_request(env: Environment, _sizes: Sizes) -> dict[str, Any]:
    tenant = "bench-calls"
    result: dict[str, Any] = {}
    with counting_calls() as counts:
        created = api("POST", "/items", "/items", tenant, body={"name": "calls", "data": {"a": 1}})
    assert created["statusCode"] == 201, created
    result["create"] = sum(counts.values())
    item_id = json.loads(created["body"])["id"]
    one = {"item_id": item_id}
    path = f"/items/{item_id}"
    steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("get", lambda: api("GET", "/items/{item_id}", path, tenant, one)),
        ("put", lambda: api("PUT", "/items/{item_id}", path, tenant, one, body={"name": "put", "data": {"a": 2}})),
        ("patch", lambda: api("PATCH", "/items/{item_id}", path, tenant, one, body={"data": {"b": 3}},
                              headers={"If-Match": '"2"'})),
        ("list_page", lambda: api("GET", "/items", "/items", tenant, query={"limit": "20"})),
        ("find_page", lambda: api("GET", "/items", "/items", tenant, query={"limit": "20", "sort": "updated_at"})),
        ("delete", lambda: api("DELETE", "/items/{item_id}", path, tenant, one)),
    ]
    for name, call in steps:
        with counting_calls() as counts:
            response = call()
        assert response["statusCode"] < 300, (name, response)
        result[name] = sum(counts.values())
    return {key: result[key] for key in ("get", "create", "put", "patch", "delete", "list_page", "find_page")}


READS = {"GetItem", "BatchGetItem", "Query", "Scan"}
WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


@contextmanager
def counting_items_read() -> Iterator[Counter[str]]:
    """Counts the records DynamoDB hands back to the service (what a read costs), per operation."""
    from chalicelib.store import aws

    counts: Counter[str] = Counter()

    def count(http_response: Any, parsed: dict[str, Any], model: Any, **_kwargs: Any) -> None:
        if model.name in ("Query", "Scan"):
            counts[model.name] += len(parsed.get("Items", []))
        elif model.name == "GetItem":
            counts[model.name] += 1 if parsed.get("Item") else 0
        elif model.name == "BatchGetItem":
            counts[model.name] += sum(len(v) for v in parsed.get("Responses", {}).values())

    events = aws.dynamodb().meta.events
    events.register("after-call.dynamodb.*", count, unique_id="bench-read")
    try:
        yield counts
    finally:
        events.unregister("after-call.dynamodb.*", unique_id="bench-read")


def cleanup(env: Environment, sizes: Sizes) -> dict[str, Any]:
    """One cleanup run over a large live tenant and a few expired items: what it reads."""
    import app
    from chalicelib.store.layout import due_pk, tenant_pk
    from chalicelib.util import clock
    from local.dispatcher import LambdaContext, scheduled_event

    past = clock.format_timestamp(clock.now() - timedelta(hours=1))
    future = clock.format_timestamp(clock.now() + timedelta(days=30))

    def expiring(when: str, tenant: str) -> Callable[[int], dict[str, Any]]:
        def attributes(n: int) -> dict[str, Any]:
            return {"expires_at": when, "due_at": when, "due_pk": due_pk(tenant_pk(tenant), f"ITEM#{n:08d}")}

        return attributes

    # Half of the live items expire in a month: they sit in the index too, just not due yet.
    env.put_items("bench-clean-live", sizes.cleanup_live // 2)
    env.put_items("bench-clean-later", sizes.cleanup_live - sizes.cleanup_live // 2, expiring(future, "bench-clean-later"))
    env.put_items("bench-clean-expired", sizes.cleanup_expired, expiring(past, "bench-clean-expired"))
    with counting_items_read() as reads, counting_calls() as calls:
        result = app.run_cleanup(scheduled_event("cleanup"), LambdaContext("run_cleanup", 300))
    assert result["complete"], result
    assert "Scan" not in calls, "the cleanup job must never scan"
    remaining = api("GET", "/items", "/items", "bench-clean-expired")
    assert json.loads(remaining["body"])["items"] == []
    items_read = sum(reads.values())
    return {"table_items": sizes.cleanup_live + sizes.cleanup_expired, "expired": sizes.cleanup_expired,
            "items_read": items_read, "ratio": round(items_read / sizes.cleanup_expired, 3)}


def bulk_import(env: Environment, sizes: Sizes) -> dict[str, Any]:
    """A JSONL file through the storage handler (own process, for its memory) and the queue consumer."""
    import app
    from chalicelib.store import aws
    from local.dispatcher import Function, QueuePoller

    lines = [json.dumps({"name": f"row {n}", "tags": ["bulk"], "data": {"n": n, "price": "12.50"}}) for n in range(sizes.import_rows)]
    payload = ("\n".join(lines) + "\n").encode()
    created = api("POST", "/imports", "/imports", "bench-import", body={"format": "jsonl", "size": len(payload)})
    assert created["statusCode"] == 201, created
    record = json.loads(created["body"])
    key = record["upload"]["fields"]["key"]
    aws.s3().put_object(Bucket=env.outputs["BucketName"], Key=key, Body=payload, ContentType="application/x-ndjson")

    started = time.perf_counter()
    done = subprocess.run([sys.executable, "bench/import_child.py", env.outputs["BucketName"], key, str(len(payload))],
                          cwd=ROOT, env=dict(os.environ), check=True, capture_output=True, text=True)
    handler = json.loads(done.stdout.strip().splitlines()[-1])
    queue_arn = f"arn:aws:sqs:us-east-1:123456789012:{env.outputs['WorkQueueUrl'].rsplit('/', 1)[-1]}"
    poller = QueuePoller(aws.sqs(), env.outputs["WorkQueueUrl"], queue_arn,
                         Function("on_work_message", app.on_work_message, 60))
    with counting_calls() as calls:
        status = "processing"
        while status == "processing":
            if not poller.poll_once():
                view = api("GET", "/imports/{import_id}", f"/imports/{record['id']}", "bench-import",
                           {"import_id": record["id"]})
                status = json.loads(view["body"])["status"]
    seconds = time.perf_counter() - started
    final = json.loads(api("GET", "/imports/{import_id}", f"/imports/{record['id']}", "bench-import",
                           {"import_id": record["id"]})["body"])
    assert (final["status"], final["rows_imported"]) == ("completed", sizes.import_rows), final
    write_calls = sum(count for name, count in calls.items() if name in WRITES)
    return {"rows": sizes.import_rows, "seconds": round(seconds, 1), "rows_per_s": round(sizes.import_rows / seconds),
            "write_calls": write_calls, "rows_per_write_call": round(sizes.import_rows / write_calls, 1),
            "peak_rss_mb": round(handler["peak_rss_mb"], 1), "storage_handler_seconds": round(handler["seconds"], 1)}


SQS_CALL_SECONDS = 0.02


def import_limits(env: Environment, sizes: Sizes) -> dict[str, Any]:
    """The storage handler on the densest file allowed, against Lambda's limits.

    The smallest valid row is a one-character CSV name (``a\n``, 2 bytes), so a file of
    ``MAX_IMPORT_BYTES`` holds about 52 M of them. The handler runs (own process, for its memory)
    on ``limit_rows`` such rows; seconds and peak memory per 1 M rows are projected to the largest
    file. Lambda gives a function 1 vCPU at 1,769 MB and a share in proportion below that, so
    the handler's CPU seconds here are scaled by 1769 / its configured memory (one local core
    taken as one vCPU), and each AWS call it made is charged ``SQS_CALL_SECONDS`` (wall time here
    is mostly the emulator's, on the same cores). The handler continues across invocations, each stopping
    ``CHECKPOINT_MARGIN_SECONDS`` before the 900 s timeout, so what must fit is one invocation's
    memory and /tmp, and the whole run within ``IMPORT_DEADLINE_SECONDS``.
    """
    import math

    from chalicelib.config.settings import get_settings
    from chalicelib.imports.pipeline import CHECKPOINT_MARGIN_SECONDS
    from chalicelib.store import aws

    settings = get_settings()
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())["lambda_functions"]["on_import_uploaded"]
    memory_mb, timeout_s = int(config["lambda_memory_size"]), int(config["lambda_timeout"])
    payload = b"name\n" + b"a\n" * sizes.limit_rows
    created = api("POST", "/imports", "/imports", "bench-limits", body={"format": "csv", "size": len(payload)})
    assert created["statusCode"] == 201, created
    record = json.loads(created["body"])
    key = record["upload"]["fields"]["key"]
    aws.s3().put_object(Bucket=env.outputs["BucketName"], Key=key, Body=payload, ContentType="text/csv")
    handler = _handler_with_queue_drained(env, key, len(payload))
    view = json.loads(api("GET", "/imports/{import_id}", f"/imports/{record['id']}", "bench-limits",
                          {"import_id": record["id"]})["body"])
    assert view["rows_total"] == sizes.limit_rows, view  # the whole file in one invocation here
    tmp_per_million = _registry_mb_per_million_ids(sizes.limit_rows)
    # The densest file with ids: 4-character ids ("a,XXXX\n", 7 bytes a row; 64**4 distinct ids).
    id_rows = settings.max_import_bytes // 7

    scale = 1_000_000 / sizes.limit_rows
    largest_rows = (settings.max_import_bytes - len(b"name\n")) // 2
    millions = largest_rows / 1_000_000
    cpu_per_million = handler["cpu_seconds"] * scale
    calls_per_million = sum(handler["calls"].values()) * scale
    # In Lambda: the CPU at the function's share of a vCPU, plus each AWS call's round trip
    # (SQS_CALL_SECONDS, an assumed in-region latency: the emulator's own time is not AWS's).
    lambda_seconds = millions * (cpu_per_million * 1769 / min(memory_mb, 1769) + calls_per_million * SQS_CALL_SECONDS)
    budget = timeout_s - CHECKPOINT_MARGIN_SECONDS
    invocations = max(1, math.ceil(lambda_seconds / budget))
    return {
        "rows": sizes.limit_rows,
        "seconds_per_1m_rows": round(handler["seconds"] * scale, 2),
        "cpu_seconds_per_1m_rows": round(cpu_per_million, 2),
        "aws_calls_per_1m_rows": round(calls_per_million),
        "invocation_peak_rss_mb": round(handler["peak_rss_mb"], 1),
        "largest_file_rows": largest_rows,
        "projected_cpu_seconds": round(cpu_per_million * millions),
        "projected_lambda_seconds": round(lambda_seconds),
        "lambda_timeout_seconds": timeout_s,
        "invocations_needed": invocations,
        "deadline_seconds": settings.import_deadline_seconds,
        "projected_total_vs_deadline": round(lambda_seconds / settings.import_deadline_seconds, 3),
        "tmp_mb_per_1m_ids": round(tmp_per_million, 1),
        "projected_tmp_mb_densest_file_with_ids": round(tmp_per_million * id_rows / 1_000_000),
    }


def _handler_with_queue_drained(env: Environment, key: str, size: int) -> dict[str, Any]:
    """The storage handler in its own process, as ``bench/import_child.py`` reports it."""
    import threading

    from chalicelib.store import aws  # The consumer is measured by "import"; here the queue is only kept short (the emulator's

    # SendMessageBatch slows down as its queue grows, which SQS does not).
    stop = threading.Event()
    queue_url = env.outputs["WorkQueueUrl"]

    def drop_messages() -> int:
        messages = aws.sqs().receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if messages:
            aws.sqs().delete_message_batch(QueueUrl=queue_url, Entries=[
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)])
        return len(messages)

    def keep_queue_short() -> None:
        while not stop.is_set():
            try:
                if drop_messages():
                    continue
            except Exception as exc:  # a busy emulator times out now and then: keep going
                print(f"queue drain: {exc}", file=sys.stderr)
            stop.wait(0.05)

    purger = threading.Thread(target=keep_queue_short, daemon=True)
    purger.start()
    try:
        done = subprocess.run([sys.executable, "bench/import_child.py", env.outputs["BucketName"], key,
                               str(size)], cwd=ROOT, env=dict(os.environ), check=True, capture_output=True,
                              text=True)
    finally:
        stop.set()
        purger.join()
    while drop_messages():
        pass
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _registry_mb_per_million_ids(count: int) -> float:
    """Size on /tmp of the ids registry (the only thing the handler keeps there) per 1 M ids."""
    from chalicelib.imports.pipeline import IdRegistry

    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-"
    with IdRegistry("unused", "unused", restore=False) as registry:
        for n in range(count):
            item_id = "".join(alphabet[(n >> shift) & 63] for shift in (18, 12, 6, 0))
            registry.claim(item_id, n + 2)
        size = registry.file_bytes()
    return size / count * 1_000_000 / (1024 * 1024)


def package(env: Environment, _sizes: Sizes) -> dict[str, Any]:
    """``chalice package`` of a copy of the project, with the per-function policies a deploy would write,
    and its bytecode compiled in as ``make package`` and ``make deploy`` ship it (infra/bytecode.py)."""
    import shutil

    import app
    from infra import policy

    with tempfile.TemporaryDirectory() as work:
        project = Path(work) / "project"
        project.mkdir()
        for name in ("app.py", "requirements.txt"):
            shutil.copy(ROOT / name, project / name)
        for name in ("chalicelib", ".chalice"):
            shutil.copytree(ROOT / name, project / name, ignore=shutil.ignore_patterns("__pycache__", "deployed"))
        from infra import deploy

        policies = policy.documents({**env.outputs, "Stage": "dev"}, app.app, "dev")
        policy.write_all(project / ".chalice", "dev", policies)
        deploy.write_stage_config(project / ".chalice" / "config.json", "dev", {}, policies)
        out = Path(work) / "out"
        # Terraform format: Chalice's CloudFormation packager refuses S3 event handlers (aws/chalice#1823).
        command = [str(Path(sys.executable).with_name("chalice")), "package", "--pkg-format", "terraform",
                   "--stage", "dev", str(out)]
        done = subprocess.run(command, check=False, cwd=project, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"chalice package failed:\n{done.stdout}\n{done.stderr}")
        zip_path = out / "deployment.zip"
        from infra import bytecode

        bytecode.compile_package(zip_path, deploy.RUNTIME)
        with zipfile.ZipFile(zip_path) as archive:
            names = archive.namelist()
        assert not any(name.startswith(("boto3/", "botocore/")) for name in names), "boto3 must not be packaged"
        return {"zip_bytes": zip_path.stat().st_size}


def person_token(env: Environment) -> dict[str, str]:
    """A person of the peers' tenant signed in to the stage's pool (built as the local stack builds
    it): the access token, and the variables that name the pool to the authorizer."""
    import boto3

    from bench import compare
    from local import userpool
    from tools import users

    cognito = boto3.client("cognito-idp")
    pool = userpool.ensure(cognito, "bench")
    password = "Bench-person-2026"
    users.invite(cognito, pool["UserPoolId"], "bench@example.com", compare.TENANT, password)
    signed_in = cognito.initiate_auth(ClientId=pool["UserPoolClientId"], AuthFlow="USER_PASSWORD_AUTH",
                                      AuthParameters={"USERNAME": "bench@example.com", "PASSWORD": password})
    return {"BENCH_TOKEN": signed_in["AuthenticationResult"]["AccessToken"], "USER_POOL_ID": pool["UserPoolId"],
            "USER_POOL_CLIENT_ID": pool["UserPoolClientId"]}


def peers(env: Environment, sizes: Sizes) -> dict[str, Any]:
    """This service against the apps a user would copy instead (bench/compare.py, bench/peers/)."""
    from bench import compare
    from chalicelib.auth import apikeys
    from chalicelib.config.settings import get_settings
    from chalicelib.items.service import ItemService

    item = ItemService(get_settings()).create(compare.TENANT, {"name": "peer", "tags": ["bench"],
                                                               "data": {"n": 1, "price": "12.50"}})
    _key_id, key = apikeys.create(env.table, compare.TENANT)
    result = compare.measure(sizes.peer_rounds, sizes.peer_warm_requests, item.id, key, person_token(env),
                             warmup=sizes.peer_warmup)
    print(compare.table(result), flush=True)
    return result


def mutation(_env: Environment, sizes: Sizes) -> dict[str, Any]:
    """Kill ratio of ``make mutation`` (bench/mutation.py): run here unless a record is already there."""
    from bench import mutation as mutation_run

    record = mutation_run.latest()
    if record is None and sizes is SMOKE:
        return {}  # minutes of work: the smoke run does not start it
    record = record or mutation_run.run()
    return {k: record[k] for k in ("mutants", "killed", "survived", "kill_ratio", "seconds")}


def lighthouse(_env: Environment, sizes: Sizes) -> dict[str, Any]:
    """The front end under Lighthouse, desktop and mobile (bench/lighthouse.py); not in the smoke run."""
    from bench import lighthouse as lighthouse_run

    return {} if sizes is SMOKE else lighthouse_run.measure()


MEASURES: list[tuple[str, Callable[[Environment, Sizes], dict[str, Any]]]] = [
    ("cold_start", cold_start),
    ("peers", peers),
    ("warm_request", warm_request),
    ("list_scaling", list_scaling),
    ("finding_scaling", finding_scaling),
    ("write_cost", write_cost),
    ("calls_per_request", calls_per_request),
    ("cleanup", cleanup),
    ("import", bulk_import),
    ("import_limits", import_limits),
    ("package", package),
    ("mutation", mutation),
    ("lighthouse", lighthouse),
]


def verdicts(results: dict[str, Any]) -> list[tuple[str, Any, str, bool]]:
    rows = []
    for (section, key), (op, bound) in TARGETS.items():
        if section in results and key in results[section]:
            value = results[section][key]
            ok = value <= bound if op == "<=" else value >= bound
            rows.append((f"{section}.{key}", value, f"{op} {bound}", ok))
    for name, value in results.get("calls_per_request", {}).items():
        rows.append((f"calls_per_request.{name}", value, "== 1", value == 1))
    if results.get("lighthouse"):
        from bench import lighthouse as lighthouse_run

        rows.extend(lighthouse_run.verdicts(results["lighthouse"]))
    if results.get("peers"):
        from bench import compare

        rows.extend(compare.verdicts(results["peers"]))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the benchmark still runs")
    parser.add_argument("--only", action="append", help="run only these measures")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    sizes = SMOKE if args.smoke else FULL
    sys.path.insert(0, str(ROOT))
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    logging.getLogger("moto.cloudformation.parsing").setLevel(logging.ERROR)  # no alarms in the emulator
    os.environ["LOG_LEVEL"] = "WARNING"  # the request log line is not what is measured
    env = Environment()
    import moto

    results: dict[str, Any] = {"smoke": args.smoke, "emulator": {"moto": moto.__version__, "speedups": env.speedups}}
    try:
        for name, measure in MEASURES:
            if args.only and name not in args.only:
                continue
            started = time.monotonic()
            results[name] = measure(env, sizes)
            print(f"{name:18} {json.dumps(results[name])}  ({time.monotonic() - started:.1f} s)", flush=True)
    finally:
        env.close()
    rows = verdicts(results)
    print()
    print(f"{'measure':36} {'value':>14}  {'target':>12}  ok")
    for name, value, target, ok in rows:
        print(f"{name:36} {value!s:>14}  {target:>12}  {'yes' if ok else 'NO'}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {args.output}")
    return 0 if args.smoke or all(ok for *_, ok in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
