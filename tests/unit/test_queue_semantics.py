"""A failed message is never acknowledged, with or without ReportBatchItemFailures on the mapping.

The work queue's mapping is emulated by ``local.dispatcher.QueuePoller`` against the AWS mock:
a normal return deletes the whole batch unless ``ReportBatchItemFailures`` is on, in which case
the listed failures stay; a raised error leaves every undeleted message on the queue. The queue's
redrive policy (``maxReceiveCount`` 5, from the template) moves poison to the dead-letter queue.
"""

from __future__ import annotations

import json
import os

import boto3
import pytest

from chalicelib.queues import batch as queue_batch
from local.dispatcher import Function, QueuePoller
from tests.unit.eventkit import dlq_url, drain, purge, queue_depth, s3_event, work_queue_poller

POISON = ["this is not JSON", json.dumps({"kind": "something else"}), json.dumps({"kind": "import_rows", "rows": []})]


@pytest.fixture(autouse=True)
def empty_queues(aws_mock):
    purge(os.environ["QUEUE_URL"])
    purge(dlq_url())
    yield
    purge(os.environ["QUEUE_URL"])
    purge(dlq_url())


def body_of(response):
    return json.loads(response.body)


def dlq_bodies() -> list[str]:
    sqs = boto3.client("sqs")
    bodies = []
    while True:
        messages = sqs.receive_message(QueueUrl=dlq_url(), MaxNumberOfMessages=10, VisibilityTimeout=30).get(
            "Messages", []
        )
        if not messages:
            return sorted(bodies)
        bodies += [m["Body"] for m in messages]


@pytest.mark.parametrize("report_batch_item_failures", [False, True], ids=["plain mapping", "ReportBatchItemFailures"])
def test_poison_reaches_the_dlq_and_the_rest_of_its_batch_is_applied_once(
    client, app_module, tenant, report_batch_item_failures
):
    data = "".join(f'{{"name": "row {n}"}}\n' for n in range(120)).encode()
    created = body_of(tenant.request("POST", "/imports", {"format": "jsonl", "size": len(data)}))
    sqs = boto3.client("sqs")
    for body in POISON:
        sqs.send_message(QueueUrl=os.environ["QUEUE_URL"], MessageBody=body)
    boto3.client("s3").put_object(
        Bucket=os.environ["BUCKET_NAME"],
        Key=created["upload"]["fields"]["key"],
        Body=data,
        ContentType="application/x-ndjson",
    )
    client.lambda_.invoke("on_import_uploaded", s3_event(created["upload"]["fields"]["key"]))
    assert queue_depth(os.environ["QUEUE_URL"]) == 6  # 3 poison + 3 chunks of the import

    poller = work_queue_poller(app_module, report_batch_item_failures=report_batch_item_failures)
    assert poller.poll_once() == 6  # one batch holding both kinds
    assert queue_depth(os.environ["QUEUE_URL"]) == 3  # the poison is still there, the chunks are not
    applied = body_of(tenant.request("GET", f"/imports/{created['id']}"))
    assert (applied["status"], applied["rows_imported"]) == ("completed", 120)

    drain(poller)
    assert queue_depth(os.environ["QUEUE_URL"]) == 0
    assert dlq_bodies() == sorted(POISON)
    assert poller.invocations == 5  # the first batch, then 4 more receives of the poison
    final = body_of(tenant.request("GET", f"/imports/{created['id']}"))
    assert (final["rows_total"], final["rows_imported"], final["rows_failed"]) == (120, 120, 0)


def _recording_poller(result, report_batch_item_failures):
    sqs = boto3.client("sqs")
    queue_url = os.environ["QUEUE_URL"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    seen = []

    def handler(event, context):
        seen.append([r["messageId"] for r in event["Records"]])
        assert context.get_remaining_time_in_millis() > 0
        return result(event)

    return QueuePoller(
        sqs,
        queue_url,
        arn,
        Function("fake", handler, 10.0),
        retry_delay=0,
        report_batch_item_failures=report_batch_item_failures,
    ), seen


def _send(count):
    sqs = boto3.client("sqs")
    for n in range(count):
        sqs.send_message(QueueUrl=os.environ["QUEUE_URL"], MessageBody=f"m{n}")


def test_the_emulated_mapping_honours_reported_failures_only_when_configured():
    def report_first(event):
        return {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}

    _send(3)
    poller, _ = _recording_poller(report_first, report_batch_item_failures=True)
    poller.poll_once()
    assert queue_depth(os.environ["QUEUE_URL"]) == 1

    purge(os.environ["QUEUE_URL"])
    _send(3)
    poller, _ = _recording_poller(report_first, report_batch_item_failures=False)
    poller.poll_once()
    # Without the flag a normal return acknowledges everything: why the app never relies on it.
    assert queue_depth(os.environ["QUEUE_URL"]) == 0


def test_the_emulated_mapping_keeps_everything_when_the_function_raises_or_reports_garbage():
    def boom(_event):
        raise RuntimeError("boom")

    _send(2)
    poller, seen = _recording_poller(boom, report_batch_item_failures=True)
    poller.poll_once()
    assert queue_depth(os.environ["QUEUE_URL"]) == 2
    poller, _ = _recording_poller(lambda _e: {"batchItemFailures": [{"itemIdentifier": "unknown"}]}, True)
    poller.poll_once()
    assert queue_depth(os.environ["QUEUE_URL"]) == 2
    assert len(seen[0]) == 2


def test_batch_helper_deletes_successes_itself_and_raises_for_failures(aws_mock):
    _send(3)
    sqs = boto3.client("sqs")
    queue_url = os.environ["QUEUE_URL"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
    from local.dispatcher import sqs_record

    event = {"Records": [sqs_record(m, arn) for m in messages]}

    def handle(body, _receive_count):
        if body == "m1":
            raise ValueError("bad")
        return "ok"

    with pytest.raises(queue_batch.BatchFailedError, match="1 of 3 messages failed"):
        queue_batch.process(event, handle)
    # The two successes are gone although the invocation failed; m1 waits for its visibility timeout.
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"
    assert attributes["ApproximateNumberOfMessages"] == "0"

    assert queue_batch.process({"Records": event["Records"][:1]}, handle) == {"batchItemFailures": []}
