"""Imports: routes, the storage-event pipeline and the queue consumer, against the AWS mock."""

from __future__ import annotations

import base64
import json
import os
from datetime import timedelta

import boto3
import pytest
from botocore.exceptions import ClientError

from chalicelib.imports import repository as imports
from chalicelib.imports import service as import_service
from chalicelib.store import aws, layout
from chalicelib.store import transactions as dynamo_batch
from tests.unit.eventkit import dlq_url, drain, purge, queue_depth, s3_event, sqs_event, work_queue_poller
from tests.unit.helpers import RowClock

CSV = "text/csv"
NDJSON = "application/x-ndjson"


def body_of(response):
    return json.loads(response.body)


@pytest.fixture(autouse=True)
def empty_queues(aws_mock):
    purge(os.environ["QUEUE_URL"])
    purge(dlq_url())
    yield


@pytest.fixture
def s3():
    return boto3.client("s3")


@pytest.fixture
def no_backoff(monkeypatch):
    monkeypatch.setattr(dynamo_batch.time, "sleep", lambda _seconds: None)


def new_import(tenant, file_format: str, data: bytes) -> dict:
    response = tenant.request("POST", "/imports", {"format": file_format, "size": len(data)})
    assert response.status_code == 201, response.body
    return body_of(response)


def upload(s3, created: dict, data: bytes, content_type: str | None = None) -> str:
    key = created["upload"]["fields"]["key"]
    content_type = content_type or created["upload"]["fields"]["Content-Type"]
    s3.put_object(Bucket=os.environ["BUCKET_NAME"], Key=key, Body=data, ContentType=content_type)
    return key


def run_import(client, app_module, s3, tenant, file_format, data, **poller_options) -> dict:
    created = new_import(tenant, file_format, data)
    key = upload(s3, created, data)
    client.lambda_.invoke("on_import_uploaded", s3_event(key))
    drain(work_queue_poller(app_module, **poller_options))
    return body_of(tenant.request("GET", f"/imports/{created['id']}"))


def all_items(tenant) -> list[dict]:
    return body_of(tenant.request("GET", "/items?limit=100"))["items"]


def every_item(tenant) -> list[dict]:
    page = body_of(tenant.request("GET", "/items?limit=100"))
    items = page["items"]
    while page["next_cursor"]:
        page = body_of(tenant.request("GET", f"/items?limit=100&cursor={page['next_cursor']}"))
        items += page["items"]
    return items


def exists(s3, key):
    return s3.list_objects_v2(Bucket=os.environ["BUCKET_NAME"], Prefix=key).get("KeyCount", 0) > 0


# -- routes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("file_format", "content_type"), [("csv", CSV), ("jsonl", NDJSON)])
def test_create_returns_a_pending_import_with_a_pinned_form(tenant, file_format, content_type):
    response = tenant.request("POST", "/imports", {"format": file_format, "size": 2048})
    assert response.status_code == 201
    created = body_of(response)
    assert response.headers["Location"] == f"/imports/{created['id']}"
    assert {k: v for k, v in created.items() if k not in ("id", "created_at", "updated_at", "upload")} == {
        "format": file_format,
        "size": 2048,
        "filename": None,
        "status": "pending_upload",
        "rows_total": None,
        "rows_imported": 0,
        "rows_failed": 0,
        "errors": [],
        "completed_at": None,
    }
    fields = created["upload"]["fields"]
    assert fields["key"] == f"imports/{tenant.name}/{created['id']}"
    policy = json.loads(base64.b64decode(fields["policy"]))
    assert ["content-length-range", 2048, 2048] in policy["conditions"]
    assert {"Content-Type": content_type} in policy["conditions"]
    fetched = body_of(tenant.request("GET", f"/imports/{created['id']}"))
    assert fetched.pop("upload")["fields"]["key"] == fields["key"]
    assert fetched == {k: v for k, v in created.items() if k != "upload"}


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"format": "xml", "size": 1}, "/format"),
        ({"format": "csv", "size": 0}, "/size"),
        ({"format": "csv", "size": True}, "/size"),
        ({"format": "csv"}, "/size"),
        ({"format": "csv", "size": 1, "name": "x"}, "/name"),
        ({"format": "csv", "size": 100 * 1024 * 1024 + 1}, "/size"),
        ({"format": "csv", "size": 1, "filename": "a/b.csv"}, "/filename"),
        ({"format": "csv", "size": 1, "filename": ""}, "/filename"),
        ({"format": "csv", "size": 1, "filename": 7}, "/filename"),
    ],
)
def test_invalid_import_declarations_are_422(tenant, body, pointer):
    response = tenant.request("POST", "/imports", body)
    assert response.status_code == 422
    assert [e["pointer"] for e in body_of(response)["errors"]] == [pointer]


def test_an_import_keeps_the_file_name_it_was_given(tenant):
    created = body_of(tenant.request("POST", "/imports", {"format": "csv", "size": 3, "filename": "Groceries 2026.csv"}))
    assert created["filename"] == "Groceries 2026.csv"
    assert body_of(tenant.request("GET", f"/imports/{created['id']}"))["filename"] == "Groceries 2026.csv"
    (listed,) = body_of(tenant.request("GET", "/imports"))["imports"]
    assert listed["filename"] == "Groceries 2026.csv"


def test_import_size_limit_is_a_stage_setting(tenant, monkeypatch):
    monkeypatch.setenv("MAX_IMPORT_BYTES", "10")
    assert tenant.request("POST", "/imports", {"format": "csv", "size": 10}).status_code == 201
    assert tenant.request("POST", "/imports", {"format": "csv", "size": 11}).status_code == 422


def test_imports_are_per_tenant(tenant, other_tenant):
    created = body_of(tenant.request("POST", "/imports", {"format": "csv", "size": 1}))
    assert other_tenant.request("GET", f"/imports/{created['id']}").status_code == 404
    assert body_of(other_tenant.request("GET", "/imports"))["imports"] == []
    assert tenant.request("GET", "/imports/not-there").status_code == 404
    assert tenant.request("GET", "/imports/bad!id").status_code == 404


def test_imports_list_pages_like_items(tenant, other_tenant):
    ids = [body_of(tenant.request("POST", "/imports", {"format": "csv", "size": 1}))["id"] for _ in range(3)]
    first = body_of(tenant.request("GET", "/imports?limit=2"))
    assert [i["id"] for i in first["imports"]] == ids[:2]
    second = body_of(tenant.request("GET", f"/imports?limit=2&cursor={first['next_cursor']}"))
    assert [i["id"] for i in second["imports"]] == ids[2:]
    assert second["next_cursor"] is None
    newest = body_of(tenant.request("GET", "/imports?order=desc&limit=3"))
    assert [i["id"] for i in newest["imports"]] == ids[::-1]
    assert newest["next_cursor"] is None
    for query in ("limit=0", "limit=x", "order=up", "cursor=garbage"):
        response = tenant.request("GET", f"/imports?{query}")
        assert response.status_code == 400, query
    foreign = other_tenant.request("GET", f"/imports?limit=2&cursor={first['next_cursor']}")
    assert foreign.status_code == 400


def test_idempotent_import_creation(tenant):
    headers = {"Idempotency-Key": "import-1"}
    first = tenant.request("POST", "/imports", {"format": "csv", "size": 5}, headers=headers)
    second = tenant.request("POST", "/imports", {"format": "csv", "size": 5}, headers=headers)
    assert body_of(first) == body_of(second)
    assert second.headers["Idempotent-Replayed"] == "true"
    assert len(body_of(tenant.request("GET", "/imports"))["imports"]) == 1


# -- pipeline and consumer ------------------------------------------------------------------------


def test_jsonl_import_end_to_end(client, app_module, s3, tenant):
    existing = tenant.request("POST", "/items", {"id": "taken", "name": "already here"})
    assert existing.status_code == 201
    data = (
        b'{"name": "one", "data": {"price": 0.10, "qty": 2}}\n'
        b"\n"
        b'{"name": ""}\n'
        b'{"id": "taken", "name": "overwrite?"}\n'
        b'{"id": "mine", "name": "two", "tags": ["a"]}\n'
        b'{"id": "mine", "name": "duplicate in the file"}\n'
        b"not json\n"
        b'{"name": "three", "expires_at": "2999-01-01T00:00:00Z"}\n'
    )
    result = run_import(client, app_module, s3, tenant, "jsonl", data)
    assert result["status"] == "completed"
    assert (result["rows_total"], result["rows_imported"], result["rows_failed"]) == (7, 3, 4)
    assert result["errors"] == [
        {"line": 3, "detail": "/name must not be blank"},
        {"line": 4, "detail": "an item with id 'taken' already exists"},
        {"line": 6, "detail": "id 'mine' is already used on line 5"},
        {"line": 7, "detail": "malformed JSON: Expecting value at column 1"},
    ]
    assert result["completed_at"] >= result["created_at"]
    assert "upload" not in result
    items = {i["name"]: i for i in all_items(tenant)}
    assert set(items) == {"already here", "one", "two", "three"}
    assert items["already here"]["version"] == 1
    assert items["one"]["data"] == {"price": 0.10, "qty": 2}
    assert json.dumps(items["one"]["data"]) == '{"price": 0.1, "qty": 2}'
    assert items["one"]["id"] == import_service.row_id(result["id"], result["created_at"], 1)
    assert items["two"]["id"] == "mine"
    assert items["three"]["expires_at"] == "2999-01-01T00:00:00.000Z"


def test_csv_import_end_to_end(client, app_module, s3, tenant):
    data = (
        "\ufeffname,description,tags,data\r\n"
        "Alpha,,x|y,\r\n"
        '"Beta, the second","spans\r\ntwo lines",,"{""n"": 1}"\r\n'
        "\r\n"
        ",no name,,\r\n"
        "Gamma,,,\r\n"
    ).encode()
    result = run_import(client, app_module, s3, tenant, "csv", data)
    assert result["status"] == "completed"
    assert (result["rows_total"], result["rows_imported"], result["rows_failed"]) == (4, 3, 1)
    assert result["errors"] == [{"line": 6, "detail": "/name must not be blank"}]
    items = all_items(tenant)
    # Server ids of one import sort in file order.
    assert [i["name"] for i in items] == ["Alpha", "Beta, the second", "Gamma"]
    assert items[1]["description"] == "spans\r\ntwo lines"
    assert items[0]["tags"] == ["x", "y"]


def test_many_rows_many_messages_and_only_the_first_100_errors(client, app_module, s3, tenant):
    lines = []
    for n in range(1, 331):
        lines.append('{"name": ""}' if n % 3 == 0 else f'{{"name": "row {n}"}}')
    data = ("\n".join(lines) + "\n").encode()
    result = run_import(client, app_module, s3, tenant, "jsonl", data)
    assert result["status"] == "completed"
    assert (result["rows_total"], result["rows_imported"], result["rows_failed"]) == (330, 220, 110)
    assert [e["line"] for e in result["errors"]] == list(range(3, 301, 3))
    listed = body_of(tenant.request("GET", "/items?limit=100"))
    assert len(listed["items"]) == 100


def test_errors_are_visible_while_processing(client, app_module, s3, tenant):
    data = b'{"name": ""}\n{"name": "ok"}\n'
    created = new_import(tenant, "jsonl", data)
    client.lambda_.invoke("on_import_uploaded", s3_event(upload(s3, created, data)))
    processing = body_of(tenant.request("GET", f"/imports/{created['id']}"))
    assert processing["status"] == "processing"
    assert (processing["rows_total"], processing["rows_failed"]) == (2, 1)
    assert processing["errors"] == [{"line": 1, "detail": "/name must not be blank"}]
    listed = body_of(tenant.request("GET", "/imports"))["imports"]
    assert listed[0]["errors"] == processing["errors"]
    drain(work_queue_poller(app_module))
    assert body_of(tenant.request("GET", f"/imports/{created['id']}"))["status"] == "completed"


@pytest.mark.parametrize(
    ("file_format", "data", "detail", "line"),
    [
        (
            "csv",
            b"name,colour\nA,red\n",
            "unknown column 'colour' in the header on line 1; allowed: name, id, description, tags, data, expires_at",
            1,
        ),
        ("csv", b"name\nA\nB\n\xff\xfe\n", "the file is not valid UTF-8: invalid bytes on line 4", 4),
        ("jsonl", b'{"name": "A"}\n{"name": "caf\xe9"}\n', "the file is not valid UTF-8: invalid bytes on line 2", 2),
        ("csv", b" \r\n", "the file has no header row", None),
    ],
)
def test_file_problems_fail_the_import_and_write_nothing(
    client, app_module, s3, tenant, file_format, data, detail, line
):
    created = new_import(tenant, file_format, data)
    key = upload(s3, created, data)
    client.lambda_.invoke("on_import_uploaded", s3_event(key))
    assert queue_depth(os.environ["QUEUE_URL"]) == 0
    failed = body_of(tenant.request("GET", f"/imports/{created['id']}"))
    assert failed["status"] == "failed"
    assert failed["errors"] == [{"line": line, "detail": detail}]
    assert failed["rows_imported"] == 0
    assert failed["completed_at"] is not None
    assert all_items(tenant) == []


@pytest.mark.parametrize(
    ("stored", "content_type", "detail"),
    [
        (b"name\nA\nB\n", CSV, "the uploaded file has 9 bytes, 7 were declared"),
        (b"name\nA\n", "text/plain", "the uploaded file is text/plain, text/csv was required"),
    ],
)
def test_upload_not_as_declared_fails_the_import(client, s3, tenant, stored, content_type, detail):
    created = new_import(tenant, "csv", b"name\nA\n")
    key = upload(s3, created, stored, content_type)
    client.lambda_.invoke("on_import_uploaded", s3_event(key))
    failed = body_of(tenant.request("GET", f"/imports/{created['id']}"))
    assert (failed["status"], failed["errors"]) == ("failed", [{"line": None, "detail": detail}])
    assert all_items(tenant) == []


def test_duplicate_storage_events_and_redelivered_batches_create_nothing_twice(client, app_module, s3, tenant):
    data = "".join(f'{{"name": "n{n}"}}\n' for n in range(120)).encode()
    created = new_import(tenant, "jsonl", data)
    key = upload(s3, created, data)
    client.lambda_.invoke("on_import_uploaded", s3_event(key))
    client.lambda_.invoke("on_import_uploaded", s3_event(key))  # S3 may deliver an event twice
    assert queue_depth(os.environ["QUEUE_URL"]) == 3  # 120 rows, 50 a message; the duplicate queued nothing
    poller = work_queue_poller(app_module)
    poller.duplicate_deliveries = True  # every batch is delivered twice
    drain(poller)
    result = body_of(tenant.request("GET", f"/imports/{created['id']}"))
    assert (result["status"], result["rows_imported"], result["rows_failed"]) == ("completed", 120, 0)
    assert sorted(i["name"] for i in every_item(tenant)) == sorted(f"n{n}" for n in range(120))
    client.lambda_.invoke("on_import_uploaded", s3_event(key))  # a late duplicate after completion
    assert queue_depth(os.environ["QUEUE_URL"]) == 0
    assert body_of(tenant.request("GET", f"/imports/{created['id']}"))["rows_imported"] == 120


def test_parser_rerun_while_processing_queues_the_same_chunks_again(client, app_module, s3, tenant, monkeypatch):
    """A crash after queueing but before rows_total was written: the retry re-queues, nothing doubles."""
    from chalicelib.imports import pipeline as import_pipeline

    data = "".join(f'{{"name": "n{n}"}}\n' for n in range(60)).encode()
    created = new_import(tenant, "jsonl", data)
    key = upload(s3, created, data)
    original = import_pipeline.ImportPipeline._set_total

    def crash(self, *args):
        raise RuntimeError("crashed before recording rows_total")

    monkeypatch.setattr(import_pipeline.ImportPipeline, "_set_total", crash)
    with pytest.raises(Exception, match="records failed"):
        client.lambda_.invoke("on_import_uploaded", s3_event(key))
    drain(work_queue_poller(app_module))
    assert body_of(tenant.request("GET", f"/imports/{created['id']}"))["status"] == "processing"
    monkeypatch.setattr(import_pipeline.ImportPipeline, "_set_total", original)
    client.lambda_.invoke("on_import_uploaded", s3_event(key))
    drain(work_queue_poller(app_module))
    result = body_of(tenant.request("GET", f"/imports/{created['id']}"))
    assert (result["status"], result["rows_total"], result["rows_imported"]) == ("completed", 60, 60)


def test_rows_written_before_a_crash_count_as_imported_on_redelivery(
    client, app_module, s3, tenant, monkeypatch, no_backoff
):
    data = b'{"name": "a"}\n{"id": "fixed", "name": "b"}\n'
    created = new_import(tenant, "jsonl", data)
    client.lambda_.invoke("on_import_uploaded", s3_event(upload(s3, created, data)))
    real = aws.dynamodb().transact_write_items
    calls = {"n": 0}

    def fail_first(**kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "boom"}}, "TransactWriteItems")
        return real(**kwargs)

    monkeypatch.setattr(aws.dynamodb(), "transact_write_items", fail_first)
    poller = work_queue_poller(app_module)
    assert poller.poll_once() == 1
    assert queue_depth(os.environ["QUEUE_URL"]) == 1  # not acknowledged
    drain(poller)
    result = body_of(tenant.request("GET", f"/imports/{created['id']}"))
    assert (result["status"], result["rows_imported"], result["rows_failed"], result["errors"]) == (
        "completed",
        2,
        0,
        [],
    )
    assert len(all_items(tenant)) == 2


def test_throttled_writes_leave_the_message_on_the_queue(client, app_module, s3, tenant, monkeypatch):
    data = b'{"name": "a"}\n{"name": "b"}\n'
    created = new_import(tenant, "jsonl", data)
    client.lambda_.invoke("on_import_uploaded", s3_event(upload(s3, created, data)))
    real = aws.dynamodb().transact_write_items
    throttled = {"left": 1}

    def throttle(**kwargs):
        if throttled["left"]:
            throttled["left"] -= 1
            raise ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}, "TransactWriteItems"
            )
        return real(**kwargs)

    monkeypatch.setattr(aws.dynamodb(), "transact_write_items", throttle)
    poller = work_queue_poller(app_module)
    poller.poll_once()
    assert queue_depth(os.environ["QUEUE_URL"]) == 1
    assert body_of(tenant.request("GET", f"/imports/{created['id']}"))["rows_imported"] == 0
    drain(poller)
    result = body_of(tenant.request("GET", f"/imports/{created['id']}"))
    assert (result["status"], result["rows_imported"]) == ("completed", 2)


def test_unprocessed_row_errors_are_retried(client, app_module, s3, tenant, monkeypatch, no_backoff):
    tenant.request("POST", "/items", {"id": "taken", "name": "first"})
    data = b'{"name": ""}\n{"name": "ok"}\n{"id": "dup", "name": "a"}\n{"id": "dup", "name": "b"}\n'
    data += b'{"id": "taken", "name": "second"}\n'
    created = new_import(tenant, "jsonl", data)
    real = aws.dynamodb().batch_write_item
    calls = []

    def partially(**kwargs):
        calls.append(kwargs)
        if len(calls) % 2:  # every first attempt leaves its last request unprocessed
            requests = kwargs["RequestItems"]
            table = next(iter(requests))
            done = {table: requests[table][:-1]}
            if done[table]:
                real(RequestItems=done)
            return {"UnprocessedItems": {table: requests[table][-1:]}}
        return real(**kwargs)

    monkeypatch.setattr(aws.dynamodb(), "batch_write_item", partially)
    client.lambda_.invoke("on_import_uploaded", s3_event(upload(s3, created, data)))  # the parser's errors
    drain(work_queue_poller(app_module))  # the consumer's
    result = body_of(tenant.request("GET", f"/imports/{created['id']}"))
    assert result["errors"] == [
        {"line": 1, "detail": "/name must not be blank"},
        {"line": 4, "detail": "id 'dup' is already used on line 3"},
        {"line": 5, "detail": "an item with id 'taken' already exists"},
    ]
    # The parser's row errors go through BatchWriteItem (one partial answer, one retry); the
    # consumer's are written inside its chunk transaction.
    assert len(calls) == 2


def test_rows_are_validated_again_when_written(client, app_module, tenant, monkeypatch):
    """An expiry that was in the future when parsed may have passed when the row is written."""
    created = new_import(tenant, "jsonl", b"x")
    table = os.environ["TABLE_NAME"]
    aws.dynamodb().update_item(
        TableName=table,
        Key=layout.import_key(tenant.name, created["id"]),
        UpdateExpression="SET #s = :p, rows_total = :t",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":p": {"S": "processing"}, ":t": {"N": "2"}},
    )
    message = {
        "kind": "import_rows",
        "tenant": tenant.name,
        "import_id": created["id"],
        "chunk": 0,
        "rows": [
            {"line": 1, "fields": {"id": "late", "name": "x", "expires_at": "2001-01-01T00:00:00Z"}},
            {"line": 2, "fields": {"name": "no id"}},
        ],
    }
    client.lambda_.invoke("on_work_message", sqs_event([json.dumps(message)]))
    result = body_of(tenant.request("GET", f"/imports/{created['id']}"))
    assert result["status"] == "completed"
    assert result["errors"] == [
        {"line": 1, "detail": "/expires_at must be in the future"},
        {"line": 2, "detail": "/id is required"},
    ]


def test_messages_for_unknown_or_finished_imports_are_acknowledged(client, tenant):
    created = new_import(tenant, "csv", b"x")
    message = {
        "kind": "import_rows",
        "tenant": tenant.name,
        "import_id": "nope",
        "chunk": 0,
        "rows": [{"line": 1, "fields": {"id": "a", "name": "a"}}],
    }
    pending = {**message, "import_id": created["id"]}
    response = client.lambda_.invoke("on_work_message", sqs_event([json.dumps(message), json.dumps(pending)]))
    assert response.payload == {"batchItemFailures": []}
    assert all_items(tenant) == []


def test_late_upload_to_a_failed_import_is_removed(client, s3, tenant):
    created = new_import(tenant, "csv", b"name\nA\n")
    imports.fail(
        os.environ["TABLE_NAME"],
        tenant.name,
        created["id"],
        detail="gave up",
        line=None,
        from_status=("pending_upload",),
    )
    key = upload(s3, created, b"name\nA\n")
    client.lambda_.invoke("on_import_uploaded", s3_event(key))
    assert not exists(s3, key)
    assert body_of(tenant.request("GET", f"/imports/{created['id']}"))["errors"] == [
        {"line": None, "detail": "gave up"}
    ]


def test_header_only_file_completes_with_no_rows(client, app_module, s3, tenant):
    result = run_import(client, app_module, s3, tenant, "csv", b"name,tags\r\n")
    assert (result["status"], result["rows_total"], result["rows_imported"], result["rows_failed"]) == (
        "completed",
        0,
        0,
        0,
    )


def test_odd_import_keys_are_skipped(client, s3, tenant):
    created = new_import(tenant, "csv", b"name\nA\n")
    key = upload(s3, created, b"name\nA\n")
    odd = [f"imports/{tenant.name}/{created['id']} copy", f"imports/{tenant.name}/a+b", "imports/é/x", f"{key}/x"]
    response = client.lambda_.invoke("on_import_uploaded", s3_event(*odd))
    assert response.payload is None
    assert body_of(tenant.request("GET", f"/imports/{created['id']}"))["status"] == "pending_upload"


def test_an_id_used_twice_in_a_file_fails_on_the_later_line_whatever_the_delivery_order(client, app_module, s3, tenant):
    lines = [f'{{"id": "id-{n}", "name": "row {n}"}}' for n in range(1, 121)]
    lines[109] = '{"id": "id-2", "name": "again"}'  # line 110 reuses line 2's id, three messages later
    data = ("\n".join(lines) + "\n").encode()
    created = new_import(tenant, "jsonl", data)
    client.lambda_.invoke("on_import_uploaded", s3_event(upload(s3, created, data)))
    sqs = boto3.client("sqs")
    messages = sqs.receive_message(QueueUrl=os.environ["QUEUE_URL"], MaxNumberOfMessages=10)["Messages"]
    for message in reversed(messages):  # re-queue them in reverse: the last chunk is written first
        sqs.delete_message(QueueUrl=os.environ["QUEUE_URL"], ReceiptHandle=message["ReceiptHandle"])
        client.lambda_.invoke("on_work_message", sqs_event([message["Body"]]))
    result = body_of(tenant.request("GET", f"/imports/{created['id']}"))
    assert result["errors"] == [{"line": 110, "detail": "id 'id-2' is already used on line 2"}]
    assert body_of(tenant.request("GET", "/items/id-2"))["name"] == "row 2"


def test_storage_keys_must_match_in_full():
    """``$`` accepts a trailing newline; a key is ours only when the whole of it matches."""
    from chalicelib.files import uploads

    assert uploads.parse_import_key("imports/t1/i1") == uploads.ImportKey("t1", "i1")
    assert uploads.parse_import_key("imports/t1/i1\n") is None
    assert uploads.parse_attachment_key("attachments/t1/i1/a1") == uploads.AttachmentKey("t1", "i1", "a1")
    assert uploads.parse_attachment_key("attachments/t1/i1/a1\n") is None


def test_a_file_under_the_key_plus_a_newline_does_not_start_the_import(client, s3, tenant):
    data = b"name\nA\n"
    created = new_import(tenant, "csv", data)
    odd = created["upload"]["fields"]["key"] + "\n"
    s3.put_object(Bucket=os.environ["BUCKET_NAME"], Key=odd, Body=data, ContentType=CSV)
    client.lambda_.invoke("on_import_uploaded", s3_event(odd))
    assert body_of(tenant.request("GET", f"/imports/{created['id']}"))["status"] == "pending_upload"


# -- every import ends: faults at each stage ------------------------------------------------------


def _client_error(code: str, operation: str = "TransactWriteItems") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "injected"}}, operation)


def _names_in(transaction: dict) -> set[str]:
    """The item names a ``TransactWriteItems`` request writes."""
    return {
        action["Put"]["Item"]["name"]["S"]
        for action in transaction["TransactItems"]
        if "Put" in action and "name" in action["Put"]["Item"]
    }


def assert_accounted(result: dict) -> None:
    assert result["status"] == "completed", result
    assert result["rows_imported"] + result["rows_failed"] == result["rows_total"]


@pytest.mark.parametrize("file_format", ["jsonl", "csv"])
def test_an_unexpected_exception_in_the_parser_is_a_row_error_at_its_line(
    client, app_module, s3, tenant, monkeypatch, file_format
):
    from chalicelib.imports import parser as import_parser

    real = import_parser.ItemCreate

    class Faulty:
        @staticmethod
        def model_validate(body):
            if body.get("name") == "boom":
                raise RuntimeError("injected parser fault")
            return real.model_validate(body)

    monkeypatch.setattr(import_parser, "ItemCreate", Faulty)
    if file_format == "jsonl":
        data = (
            b'{"name": "first"}\n'
            b'{"name": "boom"}\n'
            b'{"name": "offset", "expires_at": "9999-12-31T23:00:00-05:00"}\n'
            b'{"name": "huge", "data": {"n": ' + b"7" * 4301 + b"}}\n"
            b'{"name": "last"}\n'
        )
        expected_lines = [2, 3, 4]
    else:
        data = b"name,expires_at\nfirst,\nboom,\noffset,9999-12-31T23:00:00-05:00\nlast,\n"
        expected_lines = [3, 4]
    result = run_import(client, app_module, s3, tenant, file_format, data)
    assert_accounted(result)
    assert [e["line"] for e in result["errors"]] == expected_lines
    assert result["errors"][0]["detail"] == "could not be processed (RuntimeError)"
    assert {"first", "last"} <= {i["name"] for i in all_items(tenant)}
    assert result["rows_imported"] == len(all_items(tenant))


def test_an_unexpected_exception_in_the_consumer_is_a_row_error_and_spares_its_neighbours(
    client, app_module, s3, tenant, monkeypatch
):
    from chalicelib.items.repository import ItemRepository

    real = ItemRepository.create_actions

    def faulty(self, tenant_name, item_id, fields, now, import_ref, replacing=None):
        if fields.name == "boom":
            raise RuntimeError("injected consumer fault")
        return real(self, tenant_name, item_id, fields, now, import_ref, replacing)

    monkeypatch.setattr(ItemRepository, "create_actions", faulty)
    data = (
        b'{"name": "first"}\n'
        b'{"name": "boom"}\n'
        b'{"name": "near the end of time", "expires_at": "9999-12-30T00:00:00Z"}\n'
        b'{"name": "last"}\n'
    )
    result = run_import(client, app_module, s3, tenant, "jsonl", data)
    assert_accounted(result)
    assert result["rows_total"] == 4
    # Line 3 may be refused or imported (its expiry is an input question); it never takes others down.
    assert [e["line"] for e in result["errors"]] in ([2], [2, 3])
    assert result["errors"][0] == {"line": 2, "detail": "could not be processed (RuntimeError)"}
    names = {i["name"] for i in all_items(tenant)}
    assert {"first", "last"} <= names and "boom" not in names
    assert result["rows_imported"] == len(names)
    assert queue_depth(dlq_url()) == 0


def test_a_row_the_database_refuses_costs_only_itself(client, app_module, s3, tenant, monkeypatch):
    """A transaction refused for one row's content is applied row by row: the neighbours import."""
    real = aws.dynamodb().transact_write_items
    calls = []

    def refuse_poison(**kwargs):
        calls.append(_names_in(kwargs))
        if "poison" in _names_in(kwargs):
            raise _client_error("ValidationException")
        return real(**kwargs)

    monkeypatch.setattr(aws.dynamodb(), "transact_write_items", refuse_poison)
    data = b"".join(f'{{"name": "{name}"}}\n'.encode() for name in ("a", "b", "poison", "c"))
    result = run_import(client, app_module, s3, tenant, "jsonl", data)
    assert_accounted(result)
    assert (result["rows_imported"], result["rows_failed"]) == (3, 1)
    assert result["errors"] == [{"line": 3, "detail": "could not be processed (ClientError)"}]
    assert sorted(i["name"] for i in all_items(tenant)) == ["a", "b", "c"]
    # The whole chunk once, each row alone, then the row errors with the chunk's marker.
    assert calls[0] == {"a", "b", "poison", "c"} and len(calls) == 6


def test_rows_written_one_by_one_are_counted_once_when_the_message_returns(
    client, app_module, s3, tenant, monkeypatch, no_backoff
):
    real = aws.dynamodb().transact_write_items
    crashed = []

    def refuse_poison_and_crash_once(**kwargs):
        names = _names_in(kwargs)
        if "poison" in names:
            raise _client_error("ValidationException")
        if names == {"c"} and not crashed:
            crashed.append(True)
            raise _client_error("InternalServerError")
        return real(**kwargs)

    monkeypatch.setattr(aws.dynamodb(), "transact_write_items", refuse_poison_and_crash_once)
    data = b"".join(f'{{"name": "{name}"}}\n'.encode() for name in ("a", "b", "poison", "c"))
    created = new_import(tenant, "jsonl", data)
    client.lambda_.invoke("on_import_uploaded", s3_event(upload(s3, created, data)))
    poller = work_queue_poller(app_module)
    poller.poll_once()
    assert crashed and queue_depth(os.environ["QUEUE_URL"]) == 1  # a and b are written, the message is back
    drain(poller)
    result = body_of(tenant.request("GET", f"/imports/{created['id']}"))
    assert_accounted(result)
    assert (result["rows_imported"], result["rows_failed"]) == (3, 1)
    assert sorted(i["name"] for i in all_items(tenant)) == ["a", "b", "c"]


def test_a_chunk_failing_on_its_last_delivery_becomes_row_errors_not_a_dead_letter(
    client, app_module, s3, tenant, monkeypatch, no_backoff
):
    real = aws.dynamodb().transact_write_items

    def rows_never_go_through(**kwargs):
        if _names_in(kwargs):
            raise _client_error("InternalServerError")
        return real(**kwargs)

    monkeypatch.setattr(aws.dynamodb(), "transact_write_items", rows_never_go_through)
    data = b'{"name": ""}\n{"name": "a"}\n{"name": "b"}\n'
    created = new_import(tenant, "jsonl", data)
    client.lambda_.invoke("on_import_uploaded", s3_event(upload(s3, created, data)))
    poller = work_queue_poller(app_module)
    drain(poller)
    assert poller.invocations == 5  # the queue's maxReceiveCount
    assert queue_depth(dlq_url()) == 0
    result = body_of(tenant.request("GET", f"/imports/{created['id']}"))
    assert_accounted(result)
    assert (result["rows_imported"], result["rows_failed"]) == (0, 3)
    assert result["errors"] == [
        {"line": 1, "detail": "/name must not be blank"},
        {"line": 2, "detail": "could not be written in 5 attempts (ClientError)"},
        {"line": 3, "detail": "could not be written in 5 attempts (ClientError)"},
    ]


def test_a_chunk_that_cannot_even_be_accounted_fails_its_import_with_the_reason(
    client, app_module, s3, tenant, monkeypatch, no_backoff
):
    def nothing_goes_through(**_kwargs):
        raise _client_error("InternalServerError")

    data = b'{"name": "a"}\n{"name": "b"}\n'
    created = new_import(tenant, "jsonl", data)
    client.lambda_.invoke("on_import_uploaded", s3_event(upload(s3, created, data)))
    monkeypatch.setattr(aws.dynamodb(), "transact_write_items", nothing_goes_through)
    drain(work_queue_poller(app_module))
    assert queue_depth(dlq_url()) == 0
    result = body_of(tenant.request("GET", f"/imports/{created['id']}"))
    assert result["status"] == "failed"
    assert result["errors"] == [
        {"line": 1, "detail": "the rows from line 1 could not be written: could not be written in 5 attempts (ClientError)"}
    ]
    assert all_items(tenant) == []


def test_the_consumer_knows_the_queues_max_receive_count():
    from pathlib import Path

    import yaml

    from chalicelib.imports import consumer as import_consumer

    template = Path(__file__).resolve().parents[2] / "infra" / "template.yaml"

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    resources = yaml.load(template.read_text(), Loader=Loader)["Resources"]
    assert resources["WorkQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"] == import_consumer.MAX_RECEIVES


# -- imports of any size: continued across invocations ---------------------------------------------


def run_in_invocations(client, app_module, s3, tenant, monkeypatch, file_format, data, rows_per_invocation):
    """The storage handler with a budget of about ``rows_per_invocation`` rows; each continuation
    event (S3's ``ObjectCreated:Copy`` of the object onto itself) is delivered like the first."""
    from chalicelib.imports import pipeline as import_pipeline

    fake = RowClock()
    monkeypatch.setattr(import_pipeline, "time", fake)
    monkeypatch.setattr(import_pipeline, "deadline_for", lambda _context: fake.ticks + rows_per_invocation)
    created = new_import(tenant, file_format, data)
    key = upload(s3, created, data)
    table = os.environ["TABLE_NAME"]
    invocations = 0
    while invocations < 500:
        client.lambda_.invoke("on_import_uploaded", s3_event(key))
        invocations += 1
        record = imports.get(table, tenant.name, created["id"])
        if record.status != "processing" or record.rows_total is not None:
            break
    drain(work_queue_poller(app_module))
    return body_of(tenant.request("GET", f"/imports/{created['id']}")), invocations


def continued_file(file_format: str) -> bytes:
    lines = []
    if file_format == "csv":
        lines.append("\ufeffname,id,description")
        for n in range(1, 300):
            if n % 17 == 0:
                lines.append(f",,blank name {n}")
            elif n % 23 == 0:
                lines.append(f'"multi {n}",,"spans\r\ntwo lines"')
            elif n in (40, 250):
                lines.append(f"again {n},fixed-id,")
            else:
                lines.append(f"row {n},,")
        return ("\r\n".join(lines) + "\r\n").encode()
    lines.append('\ufeff{"name": "first"}')
    for n in range(2, 300):
        if n % 19 == 0:
            lines.append("")
        elif n % 17 == 0:
            lines.append('{"name": ""}')
        elif n in (40, 250):
            lines.append(f'{{"id": "fixed-id", "name": "again {n}"}}')
        else:
            lines.append(f'{{"name": "row {n}", "data": {{"n": {n}}}}}')
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("file_format", ["jsonl", "csv"])
def test_an_import_continued_across_invocations_ends_as_if_read_in_one(
    client, app_module, s3, tenant, other_tenant, monkeypatch, file_format
):
    data = continued_file(file_format)
    whole = run_import(client, app_module, s3, other_tenant, file_format, data)
    continued, invocations = run_in_invocations(client, app_module, s3, tenant, monkeypatch, file_format, data, 23)
    assert invocations >= 5
    assert_accounted(continued)
    for field in ("rows_total", "rows_imported", "rows_failed", "errors"):
        assert continued[field] == whole[field], field
    assert any(e["detail"].startswith("id 'fixed-id' is already used on line ") for e in continued["errors"])
    names = sorted(i["name"] for i in every_item(tenant))
    assert names == sorted(i["name"] for i in every_item(other_tenant))
    assert len(names) == continued["rows_imported"]
    assert not exists(s3, f"import-work/{tenant.name}/{continued['id']}/")  # the registry went with the end


def test_a_file_replaced_between_invocations_fails_the_import(client, app_module, s3, tenant, monkeypatch):
    from chalicelib.imports import pipeline as import_pipeline

    fake = RowClock()
    monkeypatch.setattr(import_pipeline, "time", fake)
    monkeypatch.setattr(import_pipeline, "deadline_for", lambda _context: fake.ticks + 10)
    data = continued_file("jsonl")
    created = new_import(tenant, "jsonl", data)
    key = upload(s3, created, data)
    client.lambda_.invoke("on_import_uploaded", s3_event(key))
    assert imports.get(os.environ["TABLE_NAME"], tenant.name, created["id"]).parse
    upload(s3, created, data.replace(b"row", b"ROW"))  # a second post of the form, same size
    client.lambda_.invoke("on_import_uploaded", s3_event(key))
    failed = body_of(tenant.request("GET", f"/imports/{created['id']}"))
    assert failed["status"] == "failed"
    assert failed["errors"] == [{"line": None, "detail": "the file changed while it was being imported"}]


def test_of_two_runs_from_one_checkpoint_only_one_goes_on(client, app_module, s3, tenant, monkeypatch):
    """A duplicate event starts a second run from the same checkpoint: its checkpoint is refused,
    so it starts no continuation of its own (the chunks both sent are the same chunks)."""
    from chalicelib.config.settings import get_settings
    from chalicelib.imports import pipeline as import_pipeline

    fake = RowClock()
    monkeypatch.setattr(import_pipeline, "time", fake)
    monkeypatch.setattr(import_pipeline, "deadline_for", lambda _context: fake.ticks + 10)
    data = continued_file("jsonl")
    created = new_import(tenant, "jsonl", data)
    key = upload(s3, created, data)
    table = os.environ["TABLE_NAME"]
    client.lambda_.invoke("on_import_uploaded", s3_event(key))
    first = imports.get(table, tenant.name, created["id"]).parse
    client.lambda_.invoke("on_import_uploaded", s3_event(key))  # the continuation moves it on
    second = imports.get(table, tenant.name, created["id"]).parse
    assert second["offset"] > first["offset"]
    pipeline = import_pipeline.ImportPipeline(get_settings(), fake.ticks + 10)
    stale = import_pipeline.Progress.from_record(second)
    assert not pipeline._save(tenant.name, created["id"], first, stale)  # a run that began at `first`
    assert imports.get(table, tenant.name, created["id"]).parse == second
    # And the import still ends, exactly.
    while imports.get(table, tenant.name, created["id"]).rows_total is None:
        client.lambda_.invoke("on_import_uploaded", s3_event(key))
    drain(work_queue_poller(app_module))
    assert_accounted(body_of(tenant.request("GET", f"/imports/{created['id']}")))


def test_imported_rows_are_found_by_tag_and_name(client, app_module, s3, tenant):
    """Each row's item is written with its tags' index records and index keys, in one transaction."""
    data = b"".join(
        json.dumps({"id": f"r{n:02d}", "name": f"Row {n}", "tags": ["imported", f"t{n % 2}"]}).encode() + b"\n"
        for n in range(30)
    )
    result = run_import(client, app_module, s3, tenant, "jsonl", data)
    assert result["rows_imported"] == 30
    tagged = body_of(tenant.request("GET", "/items?tag=t1&limit=100"))["items"]
    assert [item["id"] for item in tagged] == [f"r{n:02d}" for n in range(1, 30, 2)]
    assert len(body_of(tenant.request("GET", "/items?q=row%201&limit=100"))["items"]) == 11  # 1, 10-19


@pytest.mark.parametrize(("tag_count", "chunks"), [(1, 2), (20, 13)])
def test_messages_hold_as_many_rows_as_one_transaction_can_write(
    client, app_module, s3, tenant, monkeypatch, tag_count, chunks
):
    """A row is its item and one index record per tag: 50 rows of 20 tags are 1,050 writes. The
    storage handler fills each message up to what one transaction holds (``MAX_ROW_WRITES``), so
    every chunk is still one transaction."""
    real = aws.dynamodb().transact_write_items
    transactions = []

    def counting(**kwargs):
        transactions.append(len(kwargs["TransactItems"]))
        return real(**kwargs)

    monkeypatch.setattr(aws.dynamodb(), "transact_write_items", counting)
    tags = [f"tag{n}" for n in range(tag_count)]
    data = b"".join(json.dumps({"id": f"r{n:02d}", "name": "n", "tags": tags}).encode() + b"\n" for n in range(50))
    result = run_import(client, app_module, s3, tenant, "jsonl", data)
    assert len(transactions) == chunks and max(transactions) <= 100, transactions
    assert_accounted(result)
    assert result["rows_imported"] == 50
    assert len(every_item(tenant)) == 50
    page = body_of(tenant.request("GET", f"/items?tag=tag{tag_count - 1}&limit=100"))
    assert len(page["items"]) == 50


def test_a_row_replacing_an_expired_item_takes_its_tag_records(client, app_module, s3, tenant, monkeypatch):
    from chalicelib.util import clock

    soon = clock.format_timestamp(clock.now() + timedelta(seconds=60))
    created = tenant.request("POST", "/items", {"id": "x", "name": "old", "tags": ["old", "both"], "expires_at": soon})
    assert created.status_code == 201
    real_now = clock.now
    monkeypatch.setattr(clock, "now", lambda: real_now() + timedelta(seconds=120))
    data = json.dumps({"id": "x", "name": "new", "tags": ["both", "new"]}).encode() + b"\n"
    result = run_import(client, app_module, s3, tenant, "jsonl", data)
    assert result["rows_imported"] == 1
    for tag, expected in (("old", []), ("both", ["x"]), ("new", ["x"])):
        assert [i["id"] for i in body_of(tenant.request("GET", f"/items?tag={tag}"))["items"]] == expected
    records = aws.dynamodb().query(
        TableName=os.environ["TABLE_NAME"],
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": layout.tag_pk(tenant.name, "old")}},
    )["Items"]
    assert records == []
