"""Lambda events as AWS sends them, for the unit tests.

The test client's ``generate_sqs_event`` gives every record the same ``messageId`` and
``generate_s3_event`` does not URL-encode keys; these builders do what AWS does.
"""

from __future__ import annotations

import os
import urllib.parse
import uuid
from typing import Any

import boto3

from local.dispatcher import Function, QueuePoller


def s3_record(bucket: str, key: str, *, encode: bool = True, size: int = 0) -> dict[str, Any]:
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": "2026-01-01T00:00:00.000Z",
        "eventName": "ObjectCreated:Post",
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "test",
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            "object": {"key": urllib.parse.quote_plus(key) if encode else key, "size": size},
        },
    }


def s3_event(*keys: str, bucket: str | None = None) -> dict[str, Any]:
    bucket = bucket or os.environ["BUCKET_NAME"]
    return {"Records": [s3_record(bucket, key) for key in keys]}


def sqs_event(bodies: list[str], receive_count: int = 1) -> dict[str, Any]:
    """An SQS event whose records have distinct message ids (and fake receipt handles)."""
    arn = "arn:aws:sqs:us-east-1:123456789012:" + os.environ["QUEUE_URL"].rsplit("/", 1)[-1]
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": f"handle-{uuid.uuid4()}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": str(receive_count), "SentTimestamp": "0"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": "us-east-1",
            }
            for body in bodies
        ]
    }


def work_queue_poller(app_module: Any, *, report_batch_item_failures: bool = False) -> QueuePoller:
    """Lambda's event source mapping of the work queue, delivering to the app's handler."""
    sqs = boto3.client("sqs")
    queue_url = os.environ["QUEUE_URL"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    function = Function("on_work_message", app_module.on_work_message, 60.0)
    return QueuePoller(
        sqs,
        queue_url,
        arn,
        function,
        batch_size=10,
        report_batch_item_failures=report_batch_item_failures,
        retry_delay=0,
        visibility_timeout=30,
    )


def drain(poller: QueuePoller, max_polls: int = 200) -> int:
    """Deliver until the queue is empty; returns the number of deliveries."""
    for deliveries in range(max_polls):
        if not poller.poll_once():
            return deliveries
    raise AssertionError("the work queue did not drain")


def queue_depth(queue_url: str) -> int:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def dlq_url() -> str:
    return os.environ["QUEUE_URL"] + "-dlq"


def purge(queue_url: str) -> None:
    sqs = boto3.client("sqs")
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0).get(
            "Messages", []
        )
        if not messages:
            return
        for message in messages:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
