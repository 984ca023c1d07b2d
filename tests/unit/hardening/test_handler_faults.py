"""The event handlers under a database that throttles beyond the client's retries.

A handler that cannot do its work must say so — raise, so Lambda delivers the event again, or
leave the message on the queue — and must leave nothing half done; once the database answers
again, the redelivery completes the work exactly once. No storage event, queue message or
cleanup duty is lost.
"""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta

import boto3
import pytest

from chalicelib.cleanup.job import CleanupJob
from chalicelib.config.settings import get_settings
from chalicelib.util import clock
from tests.unit.conftest import make_tenant
from tests.unit.eventkit import drain, purge, queue_depth, s3_event, work_queue_poller
from tests.unit.hardening.test_faults import records
from tests.unit.helpers import body

DATABASE_WRITES = ("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem")


def _throttle_everything(faults, operations=(*DATABASE_WRITES, "GetItem", "BatchGetItem", "Query")) -> None:
    for operation in operations:
        faults.add(operation, "throttle")


def _pending_attachment(client, tenant, content: bytes = b"\x89PNG") -> tuple[dict, str]:
    tenant.request("POST", "/items", {"id": "it", "name": "files"})
    attachment = body(tenant.request("POST", "/items/it/attachments",
                                     {"filename": "a.png", "content_type": "image/png", "size": len(content)}))
    key = attachment["upload"]["fields"]["key"]
    boto3.client("s3").put_object(Bucket=os.environ["BUCKET_NAME"], Key=key, Body=content, ContentType="image/png")
    return attachment, key


def test_attachment_event_is_retried_not_lost(client, faults):
    tenant = make_tenant(client)
    attachment, key = _pending_attachment(client, tenant)
    before = records(tenant)
    _throttle_everything(faults)
    with pytest.raises(Exception, match="records failed"):
        client.lambda_.invoke("on_attachment_uploaded", s3_event(key))
    faults.clear()
    assert records(tenant) == before  # still pending, nothing half marked
    assert boto3.client("s3").head_object(Bucket=os.environ["BUCKET_NAME"], Key=key)  # file kept
    client.lambda_.invoke("on_attachment_uploaded", s3_event(key))  # Lambda's retry
    assert body(tenant.request("GET", f"/items/it/attachments/{attachment['id']}"))["status"] == "ready"


@pytest.fixture
def empty_work_queue(aws_mock):
    purge(os.environ["QUEUE_URL"])
    purge(os.environ["QUEUE_URL"] + "-dlq")
    yield
    purge(os.environ["QUEUE_URL"])


def _start_import(client, tenant, rows: list[dict]) -> dict:
    data = "\n".join(json.dumps(row) for row in rows).encode()
    created = body(tenant.request("POST", "/imports", {"format": "jsonl", "size": len(data)}))
    key = created["upload"]["fields"]["key"]
    fields = created["upload"]["fields"]
    boto3.client("s3").put_object(Bucket=os.environ["BUCKET_NAME"], Key=key, Body=data,
                                  ContentType=fields["Content-Type"])
    return {**created, "key": key}


def test_import_event_is_retried_not_lost(client, app_module, faults, empty_work_queue):
    tenant = make_tenant(client)
    created = _start_import(client, tenant, [{"id": f"r{i}", "name": f"row {i}"} for i in range(3)])
    _throttle_everything(faults)
    with pytest.raises(Exception, match="records failed"):
        client.lambda_.invoke("on_import_uploaded", s3_event(created["key"]))
    faults.clear()
    client.lambda_.invoke("on_import_uploaded", s3_event(created["key"]))
    drain(work_queue_poller(app_module))
    done = body(tenant.request("GET", f"/imports/{created['id']}"))
    assert (done["status"], done["rows_imported"], done["rows_failed"]) == ("completed", 3, 0)
    assert sorted(i["id"] for i in body(tenant.request("GET", "/items"))["items"]) == ["r0", "r1", "r2"]


def test_work_messages_stay_queued_while_the_database_throttles(client, app_module, faults, empty_work_queue):
    tenant = make_tenant(client)
    created = _start_import(client, tenant, [{"id": f"r{i}", "name": f"row {i}"} for i in range(5)])
    client.lambda_.invoke("on_import_uploaded", s3_event(created["key"]))
    queue = os.environ["QUEUE_URL"]
    depth = queue_depth(queue)
    assert depth > 0
    poller = work_queue_poller(app_module, report_batch_item_failures=True)
    _throttle_everything(faults, DATABASE_WRITES)
    assert poller.poll_once()  # delivered, and failed
    faults.clear()
    assert queue_depth(queue) == depth  # nothing acknowledged, nothing lost
    assert queue_depth(queue + "-dlq") == 0
    assert [k for k in records(tenant) if k.startswith("ITEM#")] == []  # nothing half applied
    drain(poller)
    done = body(tenant.request("GET", f"/imports/{created['id']}"))
    assert (done["status"], done["rows_imported"]) == ("completed", 5)
    assert len(body(tenant.request("GET", "/items"))["items"]) == 5


def test_cleanup_under_throttling_leaves_its_work_for_the_next_run(client, faults, monkeypatch):
    tenant = make_tenant(client)
    expiring = clock.format_timestamp(clock.now() + timedelta(seconds=2))
    tenant.request("POST", "/items", {"id": "gone-soon", "name": "x", "expires_at": expiring})
    real_now = clock.now
    monkeypatch.setattr(clock, "now", lambda: real_now() + timedelta(seconds=60))
    _throttle_everything(faults, DATABASE_WRITES)
    CleanupJob(get_settings(), time.monotonic() + 5).run()
    faults.clear()
    assert "ITEM#gone-soon" in records(tenant)  # not removed, and still due
    CleanupJob(get_settings(), time.monotonic() + 30).run()
    assert "ITEM#gone-soon" not in records(tenant)
