"""Delivers what ``chalice local`` does not: storage events, queue messages and the schedule.

Each event reaches the very handler Lambda would call (the ``EventSourceHandler`` objects of the
app's ``@app.on_s3_event``, ``@app.on_sqs_message`` and ``@app.schedule``), in the event shape
Lambda would send, and with Lambda's delivery semantics:

- **Storage events.** The bucket notifies an SQS queue (the emulator does this faithfully: keys
  URL-encoded, a first ``s3:TestEvent``), one configuration per handler with its prefix and
  suffix; each record is passed on as a one-record event, as S3 invokes Lambda. A failed
  invocation is retried, twice, like Lambda's asynchronous invocations; then the event goes to a
  dead-letter queue. Delivery waits until the object is at least ``SETTLE_SECONDS`` old, since S3
  notifies only about complete objects.
- **Queue messages.** Like an event source mapping: batches of up to the handler's
  ``batch_size``; when the invocation raises, no message is deleted and all of them become
  visible again (after ``retry_delay`` here, the visibility timeout in AWS); with
  ``report_batch_item_failures`` (off by default, as Chalice deploys it) the returned
  ``batchItemFailures`` are kept and the rest deleted, else a normal return deletes the whole
  batch. The queue's own redrive policy moves a message to its dead-letter queue after
  ``maxReceiveCount`` receives.
- **The schedule.** Every ``cleanup_interval`` seconds, a scheduled event.

Handlers get a Lambda-like context whose remaining time counts down from the function's
configured timeout (``.chalice/config.json``), so time budgets behave as deployed.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STAGE = "local"
REGION = "us-east-1"
NOTIFICATION_QUEUE = "items-local-storage-events"
# One attempt and Lambda's two retries of an asynchronous invocation.
NOTIFICATION_MAX_RECEIVES = 3
SETTLE_SECONDS = 0.25
POLL_WAIT_SECONDS = 1

Handler = Callable[[dict[str, Any], Any], Any]
log = logging.getLogger("local.dispatcher")


class LambdaContext:
    """The parts of Lambda's context object that handlers and Powertools read."""

    def __init__(self, function_name: str, timeout_seconds: float, memory_mb: int = 512) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:items-{STAGE}-{function_name}"
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/items-{STAGE}-{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def sqs_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """An SQS message as a record of Lambda's SQS event."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": dict(message.get("MessageAttributes") or {}),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def scheduled_event(rule: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:123456789012:rule/{rule}"],
        "detail": {},
    }


@dataclass
class Function:
    """One handler of the app, as Lambda would deploy it."""

    name: str
    handler: Handler
    timeout_seconds: float

    def invoke(self, event: dict[str, Any]) -> Any:
        return self.handler(event, LambdaContext(self.name, self.timeout_seconds))


@dataclass
class QueuePoller:
    """An SQS event source mapping: one queue, one function."""

    sqs: Any
    queue_url: str
    queue_arn: str
    function: Function
    batch_size: int = 10
    report_batch_item_failures: bool = False
    retry_delay: int = 1
    visibility_timeout: int = 60
    duplicate_deliveries: bool = False
    invocations: int = field(default=0)

    def poll_once(self, wait_seconds: int = 0) -> int:
        """Receive one batch and deliver it; returns how many messages it held."""
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=wait_seconds,
            VisibilityTimeout=self.visibility_timeout,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        event = {"Records": [sqs_record(m, self.queue_arn) for m in messages]}
        failed = self._deliver(event, messages)
        done = [m for m in messages if m["MessageId"] not in failed]
        self._delete(done)
        self._release([m for m in messages if m["MessageId"] in failed])
        return len(messages)

    def _deliver(self, event: dict[str, Any], messages: list[dict[str, Any]]) -> set[str]:
        """Invoke the function; the ids of the messages Lambda would keep on the queue."""
        all_ids = {m["MessageId"] for m in messages}
        result: Any = None
        for _ in range(2 if self.duplicate_deliveries else 1):
            self.invocations += 1
            try:
                result = self.function.invoke(event)
            except Exception as exc:
                log.warning("%s failed on a batch of %d: %s", self.function.name, len(messages), exc)
                return all_ids
        if not self.report_batch_item_failures or not isinstance(result, dict):
            return set()
        failures = result.get("batchItemFailures") or []
        reported = {str(f.get("itemIdentifier")) for f in failures if isinstance(f, dict)}
        if reported - all_ids:
            return all_ids  # Lambda treats an unknown identifier as a failure of the whole batch
        return reported

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), 10):
            batch = messages[start : start + 10]
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
            )

    def _release(self, messages: list[dict[str, Any]]) -> None:
        """Failed messages become visible again after ``retry_delay`` (messages the handler deleted
        itself are gone, and the emulator reports their handles as invalid: that is fine)."""
        for start in range(0, len(messages), 10):
            batch = messages[start : start + 10]
            self.sqs.change_message_visibility_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": self.retry_delay}
                    for i, m in enumerate(batch)
                ],
            )


@dataclass
class StorageEventRelay:
    """Bucket notifications (via an SQS queue) to the app's ``on_s3_event`` handlers."""

    sqs: Any
    queue_url: str
    functions: dict[str, Function]
    retry_delay: int = 1

    def poll_once(self, wait_seconds: int = 0) -> int:
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait_seconds,
            VisibilityTimeout=60,
            AttributeNames=["All"],
        ).get("Messages", [])
        for message in messages:
            if self._deliver(message):
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            else:
                self.sqs.change_message_visibility(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=self.retry_delay
                )
        return len(messages)

    def _deliver(self, message: dict[str, Any]) -> bool:
        try:
            body = json.loads(message["Body"])
        except ValueError:
            log.warning("storage notification that is not JSON dropped")
            return True
        if (
            not isinstance(body, dict)
            or body.get("Event") == "s3:TestEvent"
            or not isinstance(body.get("Records"), list)
        ):
            return True
        sent = int((message.get("Attributes") or {}).get("SentTimestamp", "0")) / 1000
        time.sleep(max(0.0, sent + SETTLE_SECONDS - time.time()))
        delivered = True
        for record in body["Records"]:
            configuration = str(((record or {}).get("s3") or {}).get("configurationId", ""))
            function = self.functions.get(configuration)
            if function is None:
                log.warning("storage notification for unknown configuration %r dropped", configuration)
                continue
            try:
                function.invoke({"Records": [record]})
            except Exception as exc:
                log.warning("%s failed: %s", function.name, exc)
                delivered = False
        return delivered


class Dispatcher:
    """Wires the app's event sources to the emulator and runs their delivery loops in threads."""

    def __init__(
        self,
        app_module: Any,
        sqs: Any,
        s3: Any,
        *,
        cleanup_interval: float = 60.0,
        report_batch_item_failures: bool = False,
        duplicate_deliveries: bool = False,
        retry_delay: int = 1,
    ) -> None:
        self.app_module = app_module
        self.sqs = sqs
        self.s3 = s3
        self.cleanup_interval = cleanup_interval
        self.report_batch_item_failures = report_batch_item_failures
        self.duplicate_deliveries = duplicate_deliveries
        self.retry_delay = retry_delay
        self.config = _chalice_config()
        self.pollers: list[QueuePoller] = []
        self.relay: StorageEventRelay | None = None
        self.schedules: list[Function] = []
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []

    def function(self, handler_string: str) -> Function:
        name = handler_string.rsplit(".", 1)[-1]
        scoped = self.config.scope(STAGE, name)
        return Function(name, getattr(self.app_module, name), float(scoped.lambda_timeout))

    def setup(self) -> None:
        from chalice.app import S3EventConfig, ScheduledEventConfig, SQSEventConfig

        storage: list[tuple[S3EventConfig, Function]] = []
        for source in self.app_module.app.event_sources:
            if isinstance(source, S3EventConfig):
                storage.append((source, self.function(source.handler_string)))
            elif isinstance(source, SQSEventConfig):
                self.pollers.append(self._poller(source))
            elif isinstance(source, ScheduledEventConfig):
                self.schedules.append(self.function(source.handler_string))
        if storage:
            self.relay = self._relay(storage)

    def _poller(self, source: Any) -> QueuePoller:
        name = source.queue or str(source.queue_arn).rsplit(":", 1)[-1]
        queue_url = self.sqs.get_queue_url(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        function = self.function(source.handler_string)
        return QueuePoller(
            self.sqs,
            queue_url,
            arn,
            function,
            batch_size=source.batch_size,
            report_batch_item_failures=self.report_batch_item_failures,
            retry_delay=self.retry_delay,
            # Lambda requires the queue's visibility timeout to cover the function's timeout.
            visibility_timeout=int(function.timeout_seconds) + 5,
            duplicate_deliveries=self.duplicate_deliveries,
        )

    def _relay(self, storage: list[tuple[Any, Function]]) -> StorageEventRelay:
        dlq_url = self.sqs.create_queue(QueueName=f"{NOTIFICATION_QUEUE}-dlq")["QueueUrl"]
        dlq_arn = self.sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": NOTIFICATION_MAX_RECEIVES})
        queue_url = self.sqs.create_queue(QueueName=NOTIFICATION_QUEUE, Attributes={"RedrivePolicy": redrive})[
            "QueueUrl"
        ]
        arn = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        by_bucket: dict[str, list[dict[str, Any]]] = {}
        for source, function in storage:
            rules = [{"Name": n, "Value": v} for n, v in (("prefix", source.prefix), ("suffix", source.suffix)) if v]
            configuration: dict[str, Any] = {"Id": function.name, "QueueArn": arn, "Events": source.events}
            if rules:
                configuration["Filter"] = {"Key": {"FilterRules": rules}}
            by_bucket.setdefault(source.bucket, []).append(configuration)
        for bucket, configurations in by_bucket.items():
            self.s3.put_bucket_notification_configuration(
                Bucket=bucket, NotificationConfiguration={"QueueConfigurations": configurations}
            )
        return StorageEventRelay(self.sqs, queue_url, {f.name: f for _, f in storage}, retry_delay=self.retry_delay)

    def start(self) -> None:
        self.setup()
        loops: list[tuple[str, Callable[[], None]]] = [
            (f"sqs-{p.function.name}", self._loop(p.poll_once)) for p in self.pollers
        ]
        if self.relay is not None:
            loops.append(("storage-events", self._loop(self.relay.poll_once)))
        if self.schedules:
            loops.append(("schedule", self._schedule_loop))
        for name, target in loops:
            thread = threading.Thread(target=target, name=f"dispatch-{name}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def _loop(self, poll_once: Callable[[int], int]) -> Callable[[], None]:
        def run() -> None:
            while not self.stopping.is_set():
                try:
                    poll_once(POLL_WAIT_SECONDS)
                except Exception as exc:
                    if self.stopping.is_set():
                        return
                    log.warning("delivery loop error (retrying): %s", exc)
                    self.stopping.wait(1)

        return run

    def _schedule_loop(self) -> None:
        while not self.stopping.wait(self.cleanup_interval):
            self.run_schedules()

    def run_schedules(self) -> None:
        for function in self.schedules:
            try:
                function.invoke(scheduled_event(f"items-{STAGE}-{function.name}"))
            except Exception as exc:
                log.warning("%s failed: %s", function.name, exc)

    def stop(self, timeout: float = 3.0) -> None:
        self.stopping.set()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))


def _chalice_config() -> Any:
    from chalice.config import Config

    config_from_disk = json.loads((ROOT / ".chalice" / "config.json").read_text())
    return Config(chalice_stage=STAGE, config_from_disk=config_from_disk)
