"""Attachments, imports and cleanup through the real local stack, over HTTP, as a client meets them.

Files go to the emulator with the presigned form the API hands out (the emulator does not
enforce the form's size and type conditions: the storage-event handler's checks are what stands
between a wrong upload and ``ready``). Storage events, queue messages and the schedule are
delivered by the stack's dispatcher.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

from tests.localstack import RunningStack, start_stack

WINDOW = 3
TIMINGS = Path(__file__).resolve().parents[2] / "test-artifacts" / "event-timings.json"


@pytest.fixture(scope="module")
def events_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """A stack with a short upload window, cleanup every second and every queue batch delivered
    twice; the mapping has ReportBatchItemFailures, as deployed (the unit tests cover it off too)."""
    stack = start_stack(
        Path(tmp_path_factory.mktemp("events-stack")),
        {
            "UPLOAD_WINDOW_SECONDS": str(WINDOW),
            "LOCAL_CLEANUP_INTERVAL": "1",
            "LOCAL_DUPLICATE_DELIVERY": "1",
        },
    )
    yield stack
    assert stack.stop() < 5


class Client:
    def __init__(self, stack: RunningStack, tenant: str = "alpha") -> None:
        self.stack = stack
        self.base = stack.api_url
        self.http = stack.session(tenant)

    def call(self, method: str, path: str, body: Any = None, expect: int | None = None) -> Any:
        response = self.http.request(method, self.base + path, json=body, timeout=30)
        if expect is not None:
            assert response.status_code == expect, response.text
        return response.json() if response.content else None

    def aws(self, service: str) -> Any:
        endpoint = re.search(r"emulator\s+(http://\S+)", self.stack.log())
        assert endpoint, "the stack did not print its emulator endpoint"
        return boto3.client(
            service,
            endpoint_url=endpoint.group(1),
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def all_items(self) -> list[dict[str, Any]]:
        page = self.call("GET", "/items?limit=100", expect=200)
        items = page["items"]
        while page["next_cursor"]:
            page = self.call("GET", f"/items?limit=100&cursor={page['next_cursor']}", expect=200)
            items += page["items"]
        return items


def post_form(upload: dict[str, Any], content: bytes, filename: str = "upload.bin") -> None:
    response = requests.post(upload["url"], data=upload["fields"], files={"file": (filename, content)}, timeout=60)
    assert response.status_code in (200, 201, 204), response.text


def wait_for(check: Callable[[], Any], timeout: float = 90.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def object_exists(client: Client, key: str) -> bool:
    bucket = re.search(r"items-local-\d+-us-east-1", client.stack.log())
    assert bucket
    try:
        client.aws("s3").head_object(Bucket=bucket.group(0), Key=key)
    except ClientError:
        return False
    return True


def record_timing(name: str, seconds: float) -> None:
    TIMINGS.parent.mkdir(exist_ok=True)
    timings = json.loads(TIMINGS.read_text()) if TIMINGS.exists() else {}
    timings[name] = round(seconds, 2)
    TIMINGS.write_text(json.dumps(timings, indent=2) + "\n")
    print(f"{name}: {seconds:.2f} s")


def finished_import(client: Client, import_id: str, timeout: float = 30.0) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        current = client.call("GET", f"/imports/{import_id}", expect=200)
        return current if current["status"] in ("completed", "failed") else None

    return wait_for(done, timeout, f"import {import_id}")


def run_import(client: Client, file_format: str, data: bytes) -> dict[str, Any]:
    created = client.call("POST", "/imports", {"format": file_format, "size": len(data)}, expect=201)
    post_form(created["upload"], data, f"rows.{file_format}")
    return finished_import(client, created["id"])


# -- on the default stack (what `make run` starts) -----------------------------------------------


def test_five_mib_attachment_upload_ready_download(local_stack):
    client = Client(local_stack)
    content = os.urandom(5 * 1024 * 1024)
    started = time.monotonic()
    item = client.call("POST", "/items", {"name": "big file"}, expect=201)
    attachment = client.call(
        "POST",
        f"/items/{item['id']}/attachments",
        {"filename": "Übersicht 2024.pdf", "content_type": "application/pdf", "size": len(content)},
        expect=201,
    )
    post_form(attachment["upload"], content, "whatever-the-browser-says.pdf")
    path = f"/items/{item['id']}/attachments/{attachment['id']}"
    ready = wait_for(lambda: (a := client.call("GET", path, expect=200))["status"] == "ready" and a, what="ready")
    download = requests.get(ready["download_url"], timeout=60)
    elapsed = time.monotonic() - started
    record_timing("attachment_5mib_seconds", elapsed)
    assert download.status_code == 200
    assert download.content == content
    assert download.headers["Content-Type"] == "application/pdf"
    assert download.headers["Content-Disposition"] == (
        "attachment; filename=\"_bersicht 2024.pdf\"; filename*=UTF-8''%C3%9Cbersicht%202024.pdf"
    )
    assert elapsed < 30


def test_upload_of_the_wrong_size_is_rejected_and_removed(local_stack):
    client = Client(local_stack)
    item = client.call("POST", "/items", {"name": "wrong size"}, expect=201)
    attachment = client.call(
        "POST",
        f"/items/{item['id']}/attachments",
        {"filename": "a.txt", "content_type": "text/plain", "size": 10},
        expect=201,
    )
    post_form(attachment["upload"], b"twelve bytes")
    path = f"/items/{item['id']}/attachments/{attachment['id']}"
    rejected = wait_for(lambda: (a := client.call("GET", path))["status"] != "pending" and a, what="a verdict")
    assert rejected["status"] == "rejected"
    assert rejected["rejection_reason"] == "the uploaded file has 12 bytes, 10 were declared"
    assert not object_exists(client, attachment["upload"]["fields"]["key"])


def test_jsonl_import_reports_row_errors_at_their_lines(local_stack):
    client = Client(local_stack, "beta")
    data = (
        b'{"name": "first", "data": {"amount": 12.50}}\n'
        b"\n"
        b'{"name": "  "}\n'
        b'{"name": "third", "tags": ["a", "b"]}\r\n'
        b"   \n"
        b'{"name": "x", "unknown": 1}\n'
        b"{not json}\n"
        b'{"name": "last"}'
    )
    result = run_import(client, "jsonl", data)
    assert result["status"] == "completed"
    assert (result["rows_total"], result["rows_imported"], result["rows_failed"]) == (6, 3, 3)
    assert result["errors"] == [
        {"line": 3, "detail": "/name must not be blank"},
        {"line": 6, "detail": "/unknown is not a known field"},
        {"line": 7, "detail": "malformed JSON: Expecting property name enclosed in double quotes at column 2"},
    ]
    names = {i["name"]: i for i in client.all_items()}
    assert {"first", "third", "last"} <= set(names)
    assert json.dumps(names["first"]["data"]) == '{"amount": 12.5}'


def test_csv_import_with_bom_quoted_newlines_and_blank_lines(local_stack):
    client = Client(local_stack, "beta")
    data = (
        "\ufeffname,id,description,tags,data,expires_at\r\n"
        "Plain csv row,,,,,\r\n"
        "\r\n"
        '"Multi, line",csv-multi,"first line\r\nsecond line",x|y,"{""k"": [1, 2]}",\r\n'
        ",csv-noname,,,,\r\n"
        "Bad date,,,,,tomorrow\r\n"
        'Bad data,,,,"{""unterminated"": ",\r\n'
        "Fine again,csv-fine,,,,2999-12-31T23:59:59Z\r\n"
    ).encode()
    result = run_import(client, "csv", data)
    assert result["status"] == "completed"
    assert (result["rows_total"], result["rows_imported"], result["rows_failed"]) == (6, 3, 3)
    assert [e["line"] for e in result["errors"]] == [6, 7, 8]
    assert result["errors"][0]["detail"] == "/name must not be blank"
    multi = client.call("GET", "/items/csv-multi", expect=200)
    assert multi["description"] == "first line\r\nsecond line"
    assert multi["tags"] == ["x", "y"]
    assert multi["data"] == {"k": [1, 2]}
    assert client.call("GET", "/items/csv-fine", expect=200)["expires_at"] == "2999-12-31T23:59:59.000Z"


def test_poison_rows_next_to_valid_ones_end_as_row_errors_at_their_lines(local_stack):
    """Rows that once left an import processing for ever: values at the calendar's end, an
    integer Python will not convert. Whichever stage refuses them, they are row errors at their
    lines and their neighbours (in the same chunk) are imported."""
    client = Client(local_stack, "beta")
    data = (
        b'{"name": "valid before"}\n'
        b'{"name": "offset past 9999", "expires_at": "9999-12-31T23:00:00-05:00"}\n'
        b'{"name": "huge integer", "data": {"n": ' + b"9" * 4301 + b"}}\n"
        b'{"name": "near the end of time", "expires_at": "9999-12-30T00:00:00Z"}\n'
        b'{"name": "valid after"}\n'
    )
    result = run_import(client, "jsonl", data)
    assert result["status"] == "completed", result
    assert result["rows_total"] == 5
    assert result["rows_imported"] + result["rows_failed"] == 5
    lines = [e["line"] for e in result["errors"]]
    assert lines[:2] == [2, 3] and set(lines) <= {2, 3, 4}, result["errors"]
    names = {i["name"] for i in client.all_items()}
    assert {"valid before", "valid after"} <= names
    assert "offset past 9999" not in names and "huge integer" not in names


@pytest.mark.parametrize(
    ("file_format", "data", "detail"),
    [
        ("csv", b"name,price\nA,1\nB,2\n", "unknown column 'price' in the header on line 1"),
        ("csv", "name\nfine\ncaf\u00e9\n".encode("latin-1"), "the file is not valid UTF-8: invalid bytes on line 3"),
        ("jsonl", b'{"name": "ok"}\n{"name": "\xff"}\n', "the file is not valid UTF-8: invalid bytes on line 2"),
    ],
)
def test_file_level_problems_fail_the_import_and_import_nothing(local_stack, file_format, data, detail):
    client = Client(local_stack, "beta")
    before = len(client.all_items())
    result = run_import(client, file_format, data)
    assert result["status"] == "failed"
    assert result["errors"][0]["detail"].startswith(detail)
    assert result["rows_imported"] == 0
    time.sleep(0.5)
    assert len(client.all_items()) == before


def test_thousand_row_csv_import_end_to_end(local_stack):
    client = Client(local_stack)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["name", "description", "tags", "data"])
    for n in range(1000):
        writer.writerow([f"bulk row {n}", f"row number {n}", "bulk|csv", json.dumps({"n": n, "price": "9.99"})])
    data = buffer.getvalue().encode()
    started = time.monotonic()
    created = client.call("POST", "/imports", {"format": "csv", "size": len(data)}, expect=201)
    post_form(created["upload"], data, "bulk.csv")
    result = finished_import(client, created["id"])
    elapsed = time.monotonic() - started
    record_timing("csv_1000_rows_seconds", elapsed)
    assert (result["status"], result["rows_total"], result["rows_imported"], result["rows_failed"]) == (
        "completed",
        1000,
        1000,
        0,
    )
    assert elapsed < 30


# -- on the short-window stack ----------------------------------------------------------------------


def test_never_uploaded_import_fails_and_attachment_disappears_after_the_window(events_stack):
    client = Client(events_stack)
    item = client.call("POST", "/items", {"name": "waiting"}, expect=201)
    attachment = client.call(
        "POST",
        f"/items/{item['id']}/attachments",
        {"filename": "a.txt", "content_type": "text/plain", "size": 3},
        expect=201,
    )
    created = client.call("POST", "/imports", {"format": "csv", "size": 100}, expect=201)
    result = finished_import(client, created["id"], timeout=WINDOW + 15)
    assert result["status"] == "failed"
    assert result["errors"] == [{"line": None, "detail": f"the file was not uploaded within {WINDOW} seconds"}]
    path = f"/items/{item['id']}/attachments/{attachment['id']}"
    wait_for(lambda: client.http.get(client.base + path, timeout=5).status_code == 404, 45, "attachment removal")
    assert client.call("GET", f"/items/{item['id']}/attachments", expect=200) == {"attachments": []}


def test_cleanup_removes_the_files_of_expired_and_deleted_items(events_stack):
    """Independent of machine speed: the item expires only once the rest has been checked (its
    expiry is set last, with a margin that grows until the write is accepted), and every wait
    polls against a generous deadline."""
    client = Client(events_stack)
    keys = []
    items = [
        client.call("POST", "/items", {"name": "expiring"}, expect=201),
        client.call("POST", "/items", {"name": "to be deleted"}, expect=201),
    ]
    for item in items:
        attachment = client.call(
            "POST",
            f"/items/{item['id']}/attachments",
            {"filename": "f.json", "content_type": "application/json", "size": 2},
            expect=201,
        )
        post_form(attachment["upload"], b"{}")
        path = f"/items/{item['id']}/attachments/{attachment['id']}"
        wait_for(lambda path=path: client.call("GET", path)["status"] == "ready", what="ready")
        keys.append(attachment["upload"]["fields"]["key"])
    client.call("DELETE", f"/items/{items[1]['id']}", expect=204)
    assert client.http.get(f"{client.base}/items/{items[1]['id']}/attachments", timeout=5).status_code == 404
    wait_for(lambda: not object_exists(client, keys[1]), 30, "the deleted item's file to go")
    assert object_exists(client, keys[0])  # cleanup ran, and left the live item's file alone
    for margin in (2, 5, 15, 60):  # "must be in the future" when it arrives, however slow the machine
        expires_at = (datetime.now(UTC) + timedelta(seconds=margin)).isoformat()
        patched = client.http.patch(
            f"{client.base}/items/{items[0]['id']}", json={"expires_at": expires_at}, timeout=30
        )
        if patched.status_code == 200:
            break
        assert patched.status_code == 422, patched.text
    else:
        raise AssertionError("could not set an expiry in the future")
    wait_for(lambda: not object_exists(client, keys[0]), margin + 60, "the expired item's file to go")
    assert client.http.get(f"{client.base}/items/{items[0]['id']}", timeout=5).status_code == 404


def test_every_batch_delivered_twice_creates_nothing_twice(events_stack):
    client = Client(events_stack, "beta")
    rows = "".join(f"twice {n},twice-{n}\n" for n in range(250))
    data = ("name,id\n" + rows + "dup,twice-7\n").encode()
    result = run_import(client, "csv", data)
    assert (result["rows_total"], result["rows_imported"], result["rows_failed"]) == (251, 250, 1)
    assert result["errors"] == [{"line": 252, "detail": "id 'twice-7' is already used on line 9"}]
    ids = [i["id"] for i in client.all_items() if i["id"].startswith("twice-")]
    assert len(ids) == len(set(ids)) == 250
    assert "ignored: chunk already applied" in events_stack.log()  # the second deliveries did arrive


def test_poison_message_ends_in_the_dead_letter_queue(events_stack):
    client = Client(events_stack)
    sqs = client.aws("sqs")
    queue = sqs.get_queue_url(QueueName="items-local-work")["QueueUrl"]
    dlq = sqs.get_queue_url(QueueName="items-local-work-dlq")["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody='{"kind": "import_rows", "rows": "not a list"}')
    result = run_import(client, "jsonl", b'{"name": "beside the poison"}\n')
    assert result["rows_imported"] == 1

    def dead() -> list[dict[str, Any]]:
        return sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])

    messages = wait_for(dead, 30, "the dead-letter queue")
    assert [m["Body"] for m in messages] == ['{"kind": "import_rows", "rows": "not a list"}']
