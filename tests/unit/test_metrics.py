"""Metrics (EMF lines on stdout) and trace ids: what each handler writes, read back as CloudWatch would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import timedelta

import pytest

from chalicelib.cleanup.job import CleanupJob
from chalicelib.config.settings import get_settings
from chalicelib.queues import batch as queue_batch
from chalicelib.util import clock, metrics, observability
from tests.localstack import ROOT
from tests.unit.eventkit import s3_event


def emf_records(text: str) -> list[dict]:
    """The EMF records among the lines written (log lines and others are skipped)."""
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"_aws"')]


def metric_values(records: list[dict], name: str, **dimensions: str) -> list[float]:
    """Every value of ``name`` in records that declare it and carry ``dimensions``."""
    found: list[float] = []
    for record in records:
        (directive,) = record["_aws"]["CloudWatchMetrics"]
        if name not in {m["Name"] for m in directive["Metrics"]}:
            continue
        if any(record.get(key) != value for key, value in dimensions.items()):
            continue
        assert directive["Namespace"].startswith(metrics.NAMESPACE_PREFIX + "/")
        value = record[name]
        found.extend(value if isinstance(value, list) else [value])
    return found


@pytest.fixture
def emitted(capfd):
    """Read what was written since the test started (after flushing anything left by earlier tests)."""
    metrics.flush()
    capfd.readouterr()

    def read() -> list[dict]:
        metrics.flush()
        return emf_records(capfd.readouterr().out)

    return read


@pytest.mark.parametrize("family", metrics.FAMILIES, ids=lambda f: f.name)
def test_each_line_is_what_powertools_would_write(family, monkeypatch):
    """The lines are written without Powertools (cold start), so Powertools' own serialiser is the oracle."""
    from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

    monkeypatch.setenv("STAGE", "oracle")
    dimensions = {name: f"value-of-{name}" for name in sorted(family.dimensions)}
    values = {name: [1.0, 2.5] for name in family.units}
    provider = AmazonCloudWatchEMFProvider(namespace=metrics.namespace(), service=metrics.SERVICE,
                                           default_dimensions={metrics.SERVICE_DIMENSION: metrics.SERVICE})
    first, *others = family.dimension_sets
    for name in first[1:]:
        provider.add_dimension(name=name, value=dimensions[name])
    for dims in others:
        provider.add_dimensions(**{name: dimensions[name] for name in dims[1:]})
    for name, unit in family.units.items():
        for value in values[name]:
            provider.add_metric(name=name, unit=unit, value=value)
    expected = provider.serialize_metric_set()
    ours = metrics.emf_document(family, dimensions, values, expected["_aws"]["Timestamp"])
    assert json.loads(json.dumps(ours)) == json.loads(json.dumps(expected))
    assert ours["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "ItemsService/oracle"


def test_a_dimension_a_family_does_not_declare_is_refused():
    with pytest.raises(ValueError, match="not declared"):
        metrics.count(metrics.RATE_LIMIT, "RateLimited", Tenant="acme")
    with pytest.raises(ValueError, match="not declared"):
        metrics.count(metrics.API, "Requests", Route="/items", Method="GET", ItemId="01J")
    with pytest.raises(ValueError, match="not declared"):
        metrics.count(metrics.API, "NoSuchMetric", Route="/items", Method="GET")


def test_no_family_has_a_tenant_key_or_id_dimension():
    for family in metrics.FAMILIES:
        for name in family.dimensions:
            assert name in {"Route", "Method", "ProblemType", "Kind"}, (family.name, name)


def test_metrics_are_written_when_the_handler_raises(emitted):
    @metrics.flushing
    def failing() -> None:
        metrics.count(metrics.QUEUE, "QueueMessagesFailed", 3)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        failing()
    assert metric_values(emitted(), "QueueMessagesFailed") == [3.0]


def test_a_request_writes_its_route_method_latency_and_outcome(client, tenant, emitted):
    created = tenant.request("POST", "/items", {"name": "metered"})
    assert created.status_code == 201
    item_id = json.loads(created.body)["id"]
    assert tenant.request("GET", f"/items/{item_id}").status_code == 200
    assert tenant.request("GET", "/items/no-such-item").status_code == 404
    records = emitted()
    get = {"Route": "/items/{item_id}", "Method": "GET"}
    assert metric_values(records, "Requests", **get) == [1.0, 1.0]
    assert metric_values(records, "ClientErrors", **get) == [0.0, 1.0]
    assert metric_values(records, "ServerErrors", **get) == [0.0, 0.0]
    assert all(v > 0 for v in metric_values(records, "Latency", **get))
    assert metric_values(records, "Requests", Route="/items", Method="POST") == [1.0]
    assert metric_values(records, "Problems", ProblemType="not-found", **get) == [1.0]
    assert metric_values(records, "AuthorizerAllow") == [1.0, 1.0, 1.0]
    text = json.dumps(records)
    assert tenant.name not in text and item_id not in text and tenant.key not in text


def test_the_authorizer_counts_denials(client, tenant, emitted):
    assert client.http.get("/items", headers={"Authorization": "Bearer isk_not-a-key-at-all-0123456789"}).status_code in (401, 403)
    assert metric_values(emitted(), "AuthorizerDeny") == [1.0]


def test_rate_limit_refusals_and_idempotent_replays_are_counted(client, tenant, emitted, monkeypatch):
    body = {"name": "once"}
    key = {"Idempotency-Key": "metrics-replay"}
    assert tenant.request("POST", "/items", body, headers=key).status_code == 201
    assert tenant.request("POST", "/items", body, headers=key).status_code == 201
    assert tenant.request("POST", "/items", {"name": "other"}, headers=key).status_code == 422
    monkeypatch.setenv("RATE_LIMIT_RPS", "1")
    monkeypatch.setenv("RATE_LIMIT_BURST", "1")
    statuses = [tenant.request("GET", "/items").status_code for _ in range(4)]
    records = emitted()
    assert metric_values(records, "IdempotentReplays") == [1.0]
    assert metric_values(records, "IdempotencyConflicts") == [1.0]
    assert metric_values(records, "Problems", ProblemType="idempotency-key-reused", Route="/items", Method="POST") == [1.0]
    assert len(metric_values(records, "RateLimited")) == statuses.count(429) >= 1


def test_a_problem_and_the_log_line_carry_the_trace_id(client, tenant, emitted, monkeypatch, capfd):
    root = "1-67891233-abcdef012345678912345678"
    monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root={root};Parent=53995c3f42cd8ad8;Sampled=1")
    response = tenant.request("GET", "/items/no-such-item")
    assert json.loads(response.body)["trace_id"] == root
    emitted()  # flushes; the log line was written before
    monkeypatch.delenv("_X_AMZN_TRACE_ID")
    assert "trace_id" not in json.loads(tenant.request("GET", "/items/no-such-item").body)


def test_the_log_line_carries_the_trace_id(client, tenant, monkeypatch):
    import io
    import logging

    from aws_lambda_powertools import Logger

    written = io.StringIO()
    logger = Logger(service="items-service-trace-test", logger_handler=logging.StreamHandler(written))
    monkeypatch.setattr(observability, "logger", lambda: logger)
    root = "1-67891233-000000000000000000000001"
    monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root={root};Parent=53995c3f42cd8ad8;Sampled=1")
    tenant.request("GET", "/items")
    lines = [json.loads(line) for line in written.getvalue().splitlines()]
    (line,) = [line for line in lines if line["message"] == "request"]
    assert line["trace_id"] == root and line["route"] == "/items" and line["status"] == 200


def test_trace_ids_come_from_lambda_or_the_gateway_header(monkeypatch):
    monkeypatch.delenv("_X_AMZN_TRACE_ID", raising=False)
    assert observability.trace_id(None) is None
    assert observability.trace_id("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1") == "1-5759e988-bd862e3fe1be46a994272793"
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-aaaaaaaa-bbbbbbbbbbbbbbbbbbbbbbbb;Parent=1;Sampled=0")
    assert observability.trace_id("Root=other") == "1-aaaaaaaa-bbbbbbbbbbbbbbbbbbbbbbbb"


def test_attachments_ready_and_rejected_are_counted(client, tenant, emitted):
    import boto3

    s3 = boto3.client("s3")
    item = json.loads(tenant.request("POST", "/items", {"name": "files"}).body)
    keys = []
    for size in (4, 5):
        created = json.loads(tenant.request("POST", f"/items/{item['id']}/attachments",
                                            {"filename": "a.png", "content_type": "image/png", "size": size}).body)
        key = created["upload"]["fields"]["key"]
        s3.put_object(Bucket=os.environ["BUCKET_NAME"], Key=key, Body=b"\x89PNG", ContentType="image/png")
        keys.append(key)
    for key in keys:
        client.lambda_.invoke("on_attachment_uploaded", s3_event(key))
    records = emitted()
    assert metric_values(records, "AttachmentsReady") == [1.0]
    assert metric_values(records, "AttachmentsRejected") == [1.0]


def test_a_failed_queue_message_is_counted(emitted):
    record = {"messageId": "m-1", "body": "{}", "attributes": {"ApproximateReceiveCount": "1"},
              "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:items-test-work", "receiptHandle": "r"}

    def fail(_body: str, _count: int) -> str:
        raise ValueError("not a rows message")

    with pytest.raises(queue_batch.BatchFailedError):
        queue_batch.process({"Records": [record]}, fail)
    records = emitted()
    assert metric_values(records, "QueueMessages") == [1.0]
    assert metric_values(records, "QueueMessagesFailed") == [1.0]


def test_cleanup_writes_its_run_its_lag_and_what_it_deleted(client, tenant, emitted, monkeypatch):
    soon = clock.format_timestamp(clock.now() + timedelta(seconds=2))
    assert tenant.request("POST", "/items", {"name": "short-lived", "expires_at": soon}).status_code == 201
    real_now = clock.now
    monkeypatch.setattr(clock, "now", lambda: real_now() + timedelta(seconds=30))
    CleanupJob(get_settings(), time.monotonic() + 60).run()
    records = emitted()
    assert metric_values(records, "CleanupRuns") == [1.0]
    (lag,) = metric_values(records, "CleanupLag")
    assert lag >= 20  # our item was due 28 s before the run (older records of other tests may be due too)
    assert metric_values(records, "CleanupDeleted", Kind="item") and sum(metric_values(records, "CleanupDeleted", Kind="item")) >= 1
    assert metric_values(records, "CleanupDuration")


def test_imports_count_rows_duration_and_failures(client, tenant, emitted):
    import boto3

    s3 = boto3.client("s3")
    body = b'{"name": "row one"}\n{"name": ""}\n'
    created = json.loads(tenant.request("POST", "/imports", {"format": "jsonl", "size": len(body)}).body)
    fields = created["upload"]["fields"]
    key = fields["key"]
    s3.put_object(Bucket=os.environ["BUCKET_NAME"], Key=key, Body=body, ContentType=fields["Content-Type"])
    client.lambda_.invoke("on_import_uploaded", s3_event(key))
    queue = boto3.client("sqs")
    for _ in range(5):
        messages = queue.receive_message(QueueUrl=os.environ["QUEUE_URL"], MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            break
        from chalicelib.imports.consumer import ImportConsumer

        for message in messages:
            ImportConsumer(get_settings()).apply(message["Body"])
            queue.delete_message(QueueUrl=os.environ["QUEUE_URL"], ReceiptHandle=message["ReceiptHandle"])
    done = json.loads(tenant.request("GET", f"/imports/{created['id']}").body)
    assert done["status"] == "completed", done
    records = emitted()
    assert sum(metric_values(records, "ImportRowsImported")) == done["rows_imported"] == 1
    assert len(metric_values(records, "ImportDuration")) == 1
    never = json.loads(tenant.request("POST", "/imports", {"format": "csv", "size": 10}).body)
    from chalicelib.imports import repository

    assert repository.fail(os.environ["TABLE_NAME"], tenant.name, never["id"], detail="test", line=None,
                           from_status=("pending_upload",))
    assert metric_values(emitted(), "ImportsFailed") == [1.0]


TRACED_CALL = r"""
import json, os, sys
sys.path.insert(0, os.getcwd())
os.environ.update({"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": "us-east-1",
                   "TRACE_AWS_CALLS": "false" if sys.argv[1] == "false" else "true"})
os.environ.pop("AWS_ENDPOINT_URL", None)
from moto import mock_aws
with mock_aws():
    if sys.argv[1] == "no-sdk":  # a package without the SDK: the calls still work, untraced
        sys.modules["aws_xray_sdk"] = None
        from chalicelib.store import aws
        aws.dynamodb().list_tables()
        print("[]")
        sys.exit(0)
    from aws_xray_sdk.core import xray_recorder
    from chalicelib.store import aws
    from chalicelib.util import observability
    aws.dynamodb().create_table(TableName="t", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                                BillingMode="PAY_PER_REQUEST")
    segment = xray_recorder.begin_segment("items")
    observability.call_annotations.set({"request_id": "req-1", "route": "/items/{item_id}"})
    aws.dynamodb().get_item(TableName="t", Key={"pk": {"S": "T#secret-tenant"}})
    print(json.dumps([{"name": s.name, "namespace": s.namespace, "annotations": s.annotations}
                      for s in segment.subsegments]))
"""


@pytest.mark.parametrize("setting", ["true", "false", "no-sdk"])
def test_aws_calls_get_annotated_subsegments_where_the_stage_asks(setting):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    done = subprocess.run([sys.executable, "-c", TRACED_CALL, setting], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    subsegments = json.loads(done.stdout.strip().splitlines()[-1])
    if setting != "true":
        assert subsegments == []
        if setting == "no-sdk":
            assert "the package has no aws-xray-sdk" in done.stdout + done.stderr
        return
    (get,) = [s for s in subsegments if s["name"] == "dynamodb" and s["namespace"] == "aws"][-1:]
    assert get["annotations"] == {"request_id": "req-1", "route": "/items/{item_id}"}
    assert "secret-tenant" not in done.stdout
