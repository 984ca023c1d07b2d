"""The scheduled cleanup job: what it removes, what it must not, and how it finds its work."""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta

import boto3
import pytest

from chalicelib.cleanup.job import CleanupJob, deadline_for
from chalicelib.config import settings
from chalicelib.config.settings import get_settings
from chalicelib.store import aws
from chalicelib.util import clock
from tests.unit.eventkit import s3_event
from tests.unit.helpers import RowClock

PNG = "image/png"
WINDOW = 2


def body_of(response):
    return json.loads(response.body)


@pytest.fixture(autouse=True)
def short_window(monkeypatch):
    monkeypatch.setenv("UPLOAD_WINDOW_SECONDS", str(WINDOW))


@pytest.fixture
def s3():
    return boto3.client("s3")


@pytest.fixture
def later(monkeypatch):
    """Stop the service's clock for the test; `shift(s)` sets it `s` seconds past where it stopped.

    A stopped clock keeps the margins exact however slow the machine is: "one second later" cannot
    become three because a request took two.
    """
    start = clock.now()
    monkeypatch.setattr(clock, "now", lambda: start)

    def shift(seconds: float) -> None:
        moved = start + timedelta(seconds=seconds)
        monkeypatch.setattr(clock, "now", lambda: moved)

    return shift


def run_cleanup(seconds: float = 60.0) -> dict:
    return CleanupJob(get_settings(), time.monotonic() + seconds).run()


def raw(tenant, sk):
    item = (
        aws.dynamodb()
        .get_item(
            TableName=os.environ["TABLE_NAME"],
            Key={"pk": {"S": f"T#{tenant.name}"}, "sk": {"S": sk}},
            ConsistentRead=True,
        )
        .get("Item")
    )
    return item


def exists(s3, key):
    return s3.list_objects_v2(Bucket=os.environ["BUCKET_NAME"], Prefix=key).get("KeyCount", 0) > 0


def soon(seconds: int = 2) -> str:
    return clock.format_timestamp(clock.now() + timedelta(seconds=seconds))


def item_with_file(client, tenant, s3, **item_fields):
    item = body_of(tenant.request("POST", "/items", {"name": "with a file", **item_fields}))
    attachment = body_of(
        tenant.request(
            "POST", f"/items/{item['id']}/attachments", {"filename": "a.png", "content_type": PNG, "size": 4}
        )
    )
    key = attachment["upload"]["fields"]["key"]
    s3.put_object(Bucket=os.environ["BUCKET_NAME"], Key=key, Body=b"\x89PNG", ContentType=PNG)
    client.lambda_.invoke("on_attachment_uploaded", s3_event(key))
    return item, attachment, key


def test_expired_items_are_deleted_with_their_files(client, tenant, s3, later):
    bare = body_of(tenant.request("POST", "/items", {"name": "bare", "expires_at": soon()}))
    item, attachment, key = item_with_file(client, tenant, s3, expires_at=soon())
    pending = body_of(
        tenant.request(
            "POST", f"/items/{item['id']}/attachments", {"filename": "b.png", "content_type": PNG, "size": 4}
        )
    )
    later(1)
    assert run_cleanup()["complete"]
    assert raw(tenant, f"ITEM#{bare['id']}") is not None  # not expired yet
    later(5)
    report = run_cleanup()
    assert report["complete"]
    assert report["expired item deleted"] >= 2
    for sk in (
        f"ITEM#{bare['id']}",
        f"ITEM#{item['id']}",
        f"ATT#{item['id']}#{attachment['id']}",
        f"ATT#{item['id']}#{pending['id']}",
    ):
        assert raw(tenant, sk) is None, sk
    assert not exists(s3, key)
    assert "expired item deleted" not in run_cleanup()  # idempotent: nothing left to do


def test_an_item_whose_expiry_was_extended_survives_a_stale_index(tenant, later):
    item = body_of(tenant.request("POST", "/items", {"name": "extended", "expires_at": soon()}))
    patched = tenant.request("PATCH", f"/items/{item['id']}", {"expires_at": soon(3600)})
    assert patched.status_code == 200
    # The index still sees the old due date (a GSI lags behind its table).
    aws.dynamodb().update_item(
        TableName=os.environ["TABLE_NAME"],
        Key={"pk": {"S": f"T#{tenant.name}"}, "sk": {"S": f"ITEM#{item['id']}"}},
        UpdateExpression="SET due_at = :past",
        ExpressionAttributeValues={":past": {"S": soon(-60)}},
    )
    later(10)
    report = run_cleanup()
    assert report["expired item extended"] >= 1
    assert tenant.request("GET", f"/items/{item['id']}").status_code == 200


def test_pending_attachments_are_removed_after_the_window_and_free_their_slot(tenant, later):
    item = body_of(tenant.request("POST", "/items", {"name": "slots"}))
    created = [
        body_of(
            tenant.request(
                "POST", f"/items/{item['id']}/attachments", {"filename": f"{n}.png", "content_type": PNG, "size": 4}
            )
        )
        for n in range(20)
    ]
    assert (
        tenant.request(
            "POST", f"/items/{item['id']}/attachments", {"filename": "x.png", "content_type": PNG, "size": 4}
        ).status_code
        == 409
    )
    later(WINDOW + 1)
    assert run_cleanup()["attachment removed"] >= 20
    assert tenant.request("GET", f"/items/{item['id']}/attachments/{created[0]['id']}").status_code == 404
    assert body_of(tenant.request("GET", f"/items/{item['id']}/attachments")) == {"attachments": []}
    assert (
        tenant.request(
            "POST", f"/items/{item['id']}/attachments", {"filename": "x.png", "content_type": PNG, "size": 4}
        ).status_code
        == 201
    )


def test_a_pending_attachment_whose_event_was_lost_is_checked_not_removed(tenant, s3, later):
    item = body_of(tenant.request("POST", "/items", {"name": "lost event"}))
    attachment = body_of(
        tenant.request(
            "POST", f"/items/{item['id']}/attachments", {"filename": "a.png", "content_type": PNG, "size": 4}
        )
    )
    s3.put_object(
        Bucket=os.environ["BUCKET_NAME"], Key=attachment["upload"]["fields"]["key"], Body=b"\x89PNG", ContentType=PNG
    )
    later(WINDOW + 1)
    run_cleanup()
    fetched = body_of(tenant.request("GET", f"/items/{item['id']}/attachments/{attachment['id']}"))
    assert fetched["status"] == "ready"


def test_never_uploaded_import_fails_and_finished_imports_lose_their_source(client, app_module, tenant, s3, later):
    from tests.unit.eventkit import drain, work_queue_poller

    abandoned = body_of(tenant.request("POST", "/imports", {"format": "csv", "size": 10}))
    done = body_of(tenant.request("POST", "/imports", {"format": "csv", "size": 8}))
    key = done["upload"]["fields"]["key"]
    s3.put_object(Bucket=os.environ["BUCKET_NAME"], Key=key, Body=b"name\nOK\n", ContentType="text/csv")
    client.lambda_.invoke("on_import_uploaded", s3_event(key))
    drain(work_queue_poller(app_module))
    assert exists(s3, key)
    later(WINDOW + 1)
    report = run_cleanup()
    assert report["import upload window closed"] >= 1
    assert report["import source removed"] >= 1
    failed = body_of(tenant.request("GET", f"/imports/{abandoned['id']}"))
    assert failed["status"] == "failed"
    assert failed["errors"] == [{"line": None, "detail": f"the file was not uploaded within {WINDOW} seconds"}]
    assert "upload" not in failed
    assert not exists(s3, key)
    for created in (abandoned, done):
        assert "due_at" not in raw(tenant, f"IMPORT#{created['id']}")
    assert body_of(tenant.request("GET", f"/imports/{done['id']}"))["status"] == "completed"


def test_tombstones_remove_the_files_of_deleted_items(client, tenant, s3):
    item, _, key = item_with_file(client, tenant, s3)
    assert tenant.request("DELETE", f"/items/{item['id']}").status_code == 204
    assert exists(s3, key)
    assert run_cleanup()["tombstone cleared"] >= 1
    assert not exists(s3, key)
    remaining = aws.dynamodb().query(
        TableName=os.environ["TABLE_NAME"],
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"T#{tenant.name}"}},
    )["Items"]
    assert [r["sk"]["S"] for r in remaining if not r["sk"]["S"].startswith("APIKEY#")] == []


def test_an_expired_item_replaced_by_a_new_one_keeps_only_the_new_attachments(client, tenant, s3, later):
    old, _, old_key = item_with_file(client, tenant, s3, id="reused", expires_at=soon())
    later(5)
    new = tenant.request("POST", "/items", {"id": "reused", "name": "second life"})
    assert new.status_code == 201
    assert body_of(tenant.request("GET", "/items/reused/attachments")) == {"attachments": []}
    _, new_attachment, new_key = item_with_file(client, tenant, s3, id="other")  # unrelated
    fresh = body_of(
        tenant.request("POST", "/items/reused/attachments", {"filename": "n.png", "content_type": PNG, "size": 4})
    )
    run_cleanup()
    assert not exists(s3, old_key)
    assert exists(s3, new_key)
    listed = body_of(tenant.request("GET", "/items/reused/attachments"))["attachments"]
    assert [a["id"] for a in listed] == [fresh["id"]]
    assert old["id"] == "reused"


def test_a_run_stops_at_its_budget_and_the_next_one_resumes(tenant, later):
    item = body_of(tenant.request("POST", "/items", {"name": "later", "expires_at": soon()}))
    later(5)
    assert run_cleanup(seconds=-1)["complete"] is False
    assert raw(tenant, f"ITEM#{item['id']}") is not None
    assert run_cleanup()["complete"] is True
    assert raw(tenant, f"ITEM#{item['id']}") is None


def test_work_is_found_through_the_index_never_a_scan(tenant, later):
    body_of(tenant.request("POST", "/items", {"name": "x", "expires_at": soon()}))
    later(5)
    calls = []

    def record(params, model, **_kwargs):
        calls.append((model.name, params.get("IndexName")))

    events = aws.dynamodb().meta.events
    events.register("provide-client-params.dynamodb.*", record)
    try:
        run_cleanup()
    finally:
        events.unregister("provide-client-params.dynamodb.*", record)
    operations = {name for name, _ in calls}
    assert "Scan" not in operations
    assert {index for name, index in calls if name == "Query"} == {"due-index"}


def test_the_scheduled_handler_runs_a_bounded_job(client):
    event = client.events.generate_cw_event("aws.events", "Scheduled Event", {}, ["rule"])
    result = client.lambda_.invoke("run_cleanup", event).payload
    assert result["complete"] is True


def test_budget_and_rate_settings(monkeypatch):
    class Context:
        def get_remaining_time_in_millis(self):
            return 100_000

    assert 89 < deadline_for(Context()) - time.monotonic() <= 90
    assert 49 < deadline_for(None) - time.monotonic() <= 50
    assert settings.cleanup_rate_minutes() == 15
    monkeypatch.setenv("CLEANUP_RATE_MINUTES", "5")
    assert settings.cleanup_rate_minutes() == 5
    for bad in ("0", "soon"):
        monkeypatch.setenv("CLEANUP_RATE_MINUTES", bad)
        with pytest.raises(settings.ConfigurationError):
            settings.cleanup_rate_minutes()


def test_pages_of_the_index_are_followed_and_a_budget_can_end_mid_page(tenant, later, monkeypatch):
    from chalicelib.store import due

    items = [body_of(tenant.request("POST", "/items", {"name": f"p{n}", "expires_at": soon()})) for n in range(3)]
    later(5)
    monkeypatch.setattr(due, "PAGE_SIZE", 1)
    job = CleanupJob(get_settings(), time.monotonic() + 60)
    visits = {"left": 2}
    real_time_left = job._time_left

    def two_visits_only():
        return visits["left"] > 0 and real_time_left()

    real_visit = job._visit

    def counted_visit(pk, sk):
        visits["left"] -= 1
        real_visit(pk, sk)

    monkeypatch.setattr(job, "_time_left", two_visits_only)
    monkeypatch.setattr(job, "_visit", counted_visit)
    assert job.run()["complete"] is False
    assert run_cleanup()["complete"] is True
    assert all(raw(tenant, f"ITEM#{i['id']}") is None for i in items)


def test_odd_and_failing_records_do_not_stop_a_run(tenant, monkeypatch):
    job = CleanupJob(get_settings(), time.monotonic() + 60)
    job._visit("KEY#abc", "KEY")
    job._visit(f"T#{tenant.name}", "SOMETHING#else")
    monkeypatch.setattr(job, "_tombstone", lambda *_: 1 / 0)
    job._visit(f"T#{tenant.name}", "ATTGONE#x#y")
    assert dict(job.report) == {"unknown": 2, "failed": 1}


def test_steps_are_safe_when_their_record_moved_on(tenant, later):
    job = CleanupJob(get_settings(), time.monotonic() + 60)
    assert job._expired_item(tenant.name, "never-existed") == "expired item gone"
    assert job._tombstone(tenant.name, "ATTGONE#x#2020-01-01T00:00:00.000Z") == "tombstone gone"
    assert job._import(tenant.name, "never-existed") == "import gone"
    created = body_of(tenant.request("POST", "/imports", {"format": "csv", "size": 3}))
    assert job._import(tenant.name, created["id"]) == "import not due"
    assert job.attachments.expire_pending(tenant.name, "ATT#x#y") == "gone"
    item = body_of(tenant.request("POST", "/items", {"name": "p"}))
    attachment = body_of(
        tenant.request(
            "POST", f"/items/{item['id']}/attachments", {"filename": "a.png", "content_type": PNG, "size": 4}
        )
    )
    sk = f"ATT#{item['id']}#{attachment['id']}"
    assert job.attachments.expire_pending(tenant.name, sk) == "not due"
    assert job.attachments.purge(tenant.name, item["id"], "1999-01-01T00:00:00.000Z") == 0


def test_a_pending_attachment_of_a_deleted_item_is_removed_without_counting(client, tenant, s3, later):
    item = body_of(tenant.request("POST", "/items", {"name": "going"}))
    attachment = body_of(
        tenant.request(
            "POST", f"/items/{item['id']}/attachments", {"filename": "a.png", "content_type": PNG, "size": 4}
        )
    )
    assert tenant.request("DELETE", f"/items/{item['id']}").status_code == 204
    later(WINDOW + 1)
    job = CleanupJob(get_settings(), time.monotonic() + 60)
    assert job.attachments.expire_pending(tenant.name, f"ATT#{item['id']}#{attachment['id']}") == "removed"
    assert raw(tenant, f"ATT#{item['id']}#{attachment['id']}") is None
    # The upload arrives after all: no attachment awaits it any more.
    key = attachment["upload"]["fields"]["key"]
    s3.put_object(Bucket=os.environ["BUCKET_NAME"], Key=key, Body=b"\x89PNG", ContentType=PNG)
    assert job.attachments.process_upload(os.environ["BUCKET_NAME"], key).startswith("removed")
    assert not exists(s3, key)
    assert job.attachments.process_upload(os.environ["BUCKET_NAME"], key).startswith("removed")


# -- imports always end: the processing deadline ---------------------------------------------------

DEADLINE = 30


def _uploaded_import(client, tenant, s3, data: bytes) -> dict:
    created = body_of(tenant.request("POST", "/imports", {"format": "jsonl", "size": len(data)}))
    key = created["upload"]["fields"]["key"]
    s3.put_object(Bucket=os.environ["BUCKET_NAME"], Key=key, Body=data, ContentType="application/x-ndjson")
    return created


def _operations_during(run) -> tuple[dict, list[tuple[str, str | None]]]:
    calls: list[tuple[str, str | None]] = []

    def record(params, model, **_kwargs):
        calls.append((model.name, params.get("IndexName")))

    events = aws.dynamodb().meta.events
    events.register("provide-client-params.dynamodb.*", record)
    try:
        return run(), calls
    finally:
        events.unregister("provide-client-params.dynamodb.*", record)


def test_an_import_whose_rows_could_not_be_queued_fails_at_its_deadline(client, tenant, s3, later, monkeypatch):
    """Queue send fault: the storage handler fails every time; the import still ends."""
    from botocore.exceptions import ClientError

    monkeypatch.setenv("IMPORT_DEADLINE_SECONDS", str(DEADLINE))
    created = _uploaded_import(client, tenant, s3, b'{"name": "a"}\n{"name": "b"}\n')

    def refuse(**_kwargs):
        raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "injected"}}, "SendMessageBatch")

    monkeypatch.setattr(aws.sqs(), "send_message_batch", refuse)
    for _ in range(3):  # the event and Lambda's two retries of an asynchronous invocation
        with pytest.raises(Exception, match="records failed"):
            client.lambda_.invoke("on_import_uploaded", s3_event(created["upload"]["fields"]["key"]))
    assert body_of(tenant.request("GET", f"/imports/{created['id']}"))["status"] == "processing"
    later(DEADLINE - 5)
    run_cleanup()
    assert body_of(tenant.request("GET", f"/imports/{created['id']}"))["status"] == "processing"  # not due yet
    later(DEADLINE + 1)
    report, calls = _operations_during(run_cleanup)
    assert report["import deadline passed"] >= 1
    assert "Scan" not in {name for name, _ in calls}
    assert {index for name, index in calls if name == "Query"} == {"due-index"}
    failed = body_of(tenant.request("GET", f"/imports/{created['id']}"))
    assert failed["status"] == "failed"
    assert failed["errors"] == [
        {"line": None, "detail": f"the import did not finish within {DEADLINE} seconds; 0 of an unknown number of rows were imported"}
    ]
    assert failed["completed_at"] is not None
    assert not exists(s3, created["upload"]["fields"]["key"])  # and its source file is gone
    assert "due_at" not in raw(tenant, f"IMPORT#{created['id']}")


def test_an_import_whose_chunk_sits_in_the_dead_letter_queue_fails_at_its_deadline(
    client, app_module, tenant, s3, later, monkeypatch
):
    from tests.unit.eventkit import dlq_url, drain, purge, work_queue_poller

    monkeypatch.setenv("IMPORT_DEADLINE_SECONDS", str(DEADLINE))
    purge(os.environ["QUEUE_URL"])
    data = "".join(f'{{"name": "row {n}"}}\n' for n in range(60)).encode()
    created = _uploaded_import(client, tenant, s3, data)
    client.lambda_.invoke("on_import_uploaded", s3_event(created["upload"]["fields"]["key"]))
    sqs = boto3.client("sqs")
    messages = sqs.receive_message(QueueUrl=os.environ["QUEUE_URL"], MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == 2
    # The second chunk "reaches the dead-letter queue" (moved there as the redrive policy would).
    sqs.send_message(QueueUrl=dlq_url(), MessageBody=messages[1]["Body"])
    sqs.delete_message(QueueUrl=os.environ["QUEUE_URL"], ReceiptHandle=messages[1]["ReceiptHandle"])
    sqs.change_message_visibility(
        QueueUrl=os.environ["QUEUE_URL"], ReceiptHandle=messages[0]["ReceiptHandle"], VisibilityTimeout=0
    )
    drain(work_queue_poller(app_module))
    assert body_of(tenant.request("GET", f"/imports/{created['id']}"))["rows_imported"] == 50
    later(DEADLINE + 1)
    run_cleanup()
    failed = body_of(tenant.request("GET", f"/imports/{created['id']}"))
    assert (failed["status"], failed["rows_total"], failed["rows_imported"]) == ("failed", 60, 50)
    assert failed["errors"] == [
        {"line": None, "detail": f"the import did not finish within {DEADLINE} seconds; 50 of 60 rows were imported"}
    ]
    purge(dlq_url())


def test_a_completed_import_is_not_failed_by_its_old_deadline(client, app_module, tenant, s3, later, monkeypatch):
    from tests.unit.eventkit import drain, work_queue_poller

    monkeypatch.setenv("IMPORT_DEADLINE_SECONDS", str(DEADLINE))
    created = _uploaded_import(client, tenant, s3, b'{"name": "a"}\n')
    client.lambda_.invoke("on_import_uploaded", s3_event(created["upload"]["fields"]["key"]))
    drain(work_queue_poller(app_module))
    later(DEADLINE + 1)
    run_cleanup()
    assert body_of(tenant.request("GET", f"/imports/{created['id']}"))["status"] == "completed"


def test_an_import_stopped_between_invocations_fails_at_its_deadline_and_leaves_no_work_file(
    client, tenant, s3, later, monkeypatch
):
    """A continuation that never came (its event lost): the deadline ends the import, and the
    cleanup removes the ids registry that waited for it along with the source file."""
    from chalicelib.files import uploads
    from chalicelib.imports import pipeline as import_pipeline

    fake = RowClock()
    monkeypatch.setattr(import_pipeline, "time", fake)
    monkeypatch.setattr(import_pipeline, "deadline_for", lambda _context: fake.ticks + 10)
    monkeypatch.setenv("IMPORT_DEADLINE_SECONDS", str(DEADLINE))
    data = "".join(f'{{"id": "explicit-{n}", "name": "row {n}"}}\n' for n in range(120)).encode()
    created = _uploaded_import(client, tenant, s3, data)
    client.lambda_.invoke("on_import_uploaded", s3_event(created["upload"]["fields"]["key"]))
    work = uploads.import_work_key(tenant.name, created["id"])
    assert exists(s3, work)  # stopped after its first message, with 50 ids registered
    later(DEADLINE + 1)
    run_cleanup()
    failed = body_of(tenant.request("GET", f"/imports/{created['id']}"))
    assert failed["status"] == "failed"
    assert failed["errors"][0]["detail"].startswith(f"the import did not finish within {DEADLINE} seconds")
    assert not exists(s3, work)
    assert not exists(s3, created["upload"]["fields"]["key"])
