"""Lambda's SQS batch contract, honoured whatever the event source mapping says.

With ``ReportBatchItemFailures`` on the mapping, Lambda deletes every message not listed in the
returned ``batchItemFailures``; without it (Chalice cannot set it), Lambda deletes the whole batch
whenever the function returns normally. A handler that only returns failures would therefore
lose them on a mapping without the flag.

So: messages are processed one by one (Powertools' batch processor); if any failed, the ones
that succeeded are deleted here, explicitly, and the invocation raises. Either way Lambda then
returns exactly the failed messages to the queue, where they are delivered again and, after
``maxReceiveCount`` receives, moved to the dead-letter queue. When all succeed the function
returns an empty ``batchItemFailures`` and Lambda deletes the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib.store import aws
from chalicelib.util import metrics
from chalicelib.util.observability import logger


class BatchFailedError(RuntimeError):
    """Some messages of the batch failed; they stay on the queue (the others were deleted)."""


def receive_count(record: Any) -> int:
    """The message's ``ApproximateReceiveCount`` (1 on its first delivery)."""
    try:
        return max(1, int(str(record["attributes"]["ApproximateReceiveCount"])))
    except (KeyError, TypeError, ValueError):
        return 1


def process(event: dict[str, Any], handle: Callable[[str, int], str]) -> dict[str, Any]:
    """Apply ``handle(body, receive_count)`` to each message; raise ``BatchFailedError`` if any failed.

    The receive count lets a handler tell the last delivery before the dead-letter queue from the
    others, and account for a message it cannot apply instead of leaving it to the queue.
    """
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    records = list(event.get("Records") or [])

    def record_handler(record: SQSRecord) -> str:
        try:
            outcome = handle(record.body, receive_count(record))
        except Exception as exc:
            logger().warning(
                "message failed; it stays on the queue",
                message_id=record.message_id,
                receive_count=record.attributes.approximate_receive_count,
                error=f"{type(exc).__name__}: {exc}",
            )
            raise
        logger().info("message applied", message_id=record.message_id, outcome=outcome)
        return outcome

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    with processor(records=records, handler=record_handler):
        processor.process()
    metrics.record(metrics.QUEUE, {"QueueMessages": len(records), "QueueMessagesFailed": len(processor.fail_messages)})
    if processor.fail_messages:
        acknowledge(processor.success_messages)
        raise BatchFailedError(
            f"{len(processor.fail_messages)} of {len(records)} messages failed and stay on the queue"
        )
    response: dict[str, Any] = dict(processor.response())
    return response


def acknowledge(records: list[Any]) -> None:
    """Delete processed messages (Lambda records) from their queue, named by each record's ARN.

    Records are read by key, which works for the raw dicts and Powertools' record wrappers alike.
    """
    by_queue: dict[str, list[Any]] = {}
    for record in records:
        by_queue.setdefault(str(record["eventSourceARN"]), []).append(record)
    client = aws.sqs()
    for arn, queue_records in by_queue.items():
        _, _, _, _, account, name = arn.split(":", 5)
        queue_url = client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
        for start in range(0, len(queue_records), 10):
            batch = queue_records[start : start + 10]
            response = client.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(batch)],
            )
            for failure in response.get("Failed") or []:
                # Not fatal: the message is delivered again and applying it again changes nothing.
                logger().warning("could not delete a processed message", queue=name, error=failure.get("Message"))
