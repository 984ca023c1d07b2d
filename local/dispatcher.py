"""Delivers storage events, queue messages and the schedule to the packaged functions.

The wiring comes from the package ``chalice package`` generated for the local stage
(``local/package.py``): each event reaches the function Lambda would invoke, in the event shape
Lambda would send, and with Lambda's delivery semantics:

- **Storage events.** The bucket notifies an SQS queue (the emulator does this faithfully: keys
  URL-encoded, a first ``s3:TestEvent``), one configuration per packaged notification with its
  events, prefix and suffix; each record is passed on as a one-record event, as S3 invokes
  Lambda. A failed invocation is retried, twice, like Lambda's asynchronous invocations; then the
  event goes to a dead-letter queue. Delivery waits until the object is at least
  ``SETTLE_SECONDS`` old, since S3 notifies only about complete objects.
- **Queue messages.** Like the packaged event source mapping: batches of up to its
  ``batch_size``; when the invocation raises, no message is deleted and all of them become
  visible again (after ``retry_delay`` here, the visibility timeout in AWS); with
  ``ReportBatchItemFailures`` among the mapping's response types (the deploy step turns it on)
  the returned ``batchItemFailures`` are kept and the rest deleted, else a normal return deletes
  the whole batch. The queue's own redrive policy moves a message to its dead-letter queue after
  ``maxReceiveCount`` receives.
- **The schedule.** At the packaged rule's rate, or every ``cleanup_interval`` seconds when the
  local stack is told so (``LOCAL_CLEANUP_INTERVAL``), a scheduled event.

In the local stack each function runs in its own worker processes with its own environment and
timeout (``local/lambdas.py``); ``LambdaContext`` here serves handlers run in-process by tests.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from local.package import Package, QueueMapping, StorageNotification

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
    """Wires the package's event sources to the emulator and runs their delivery loops in threads.

    The wiring is what ``chalice package`` generated for the stage (``local/package.py``): the
    S3 notifications with their events and prefixes, the SQS mapping with its batch size and
    response types, the schedule with its rate. ``handlers`` maps each packaged function (its
    Terraform name, e.g. ``on_work_message``) to what runs it: the stack passes worker pools
    (``local/lambdas.py``), tests may pass the app's handlers themselves.
    """

    def __init__(
        self,
        package: Package,
        handlers: Mapping[str, Handler],
        sqs: Any,
        s3: Any,
        *,
        cleanup_interval: float | None = None,
        duplicate_deliveries: bool = False,
        retry_delay: int = 1,
        event_dead_letter_arn: str | None = None,
    ) -> None:
        self.package = package
        # Where failed storage events end: the stage's events dead-letter queue (infra/template.yaml),
        # as the deploy step makes it the functions' on-failure destination; a queue of its own if none.
        self.event_dead_letter_arn = event_dead_letter_arn
        self.handlers = handlers
        self.sqs = sqs
        self.s3 = s3
        # None: the schedule's own rate from the package; a number overrides it (seconds).
        self.cleanup_interval = cleanup_interval
        self.duplicate_deliveries = duplicate_deliveries
        self.retry_delay = retry_delay
        self.pollers: list[QueuePoller] = []
        self.relay: StorageEventRelay | None = None
        self.schedules: list[tuple[Function, float, str]] = []
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []

    def function(self, key: str) -> Function:
        spec = self.package.functions[key]
        return Function(key, self.handlers[key], spec.timeout)

    def setup(self) -> None:
        for mapping in self.package.mappings:
            self.pollers.append(self._poller(mapping))
        for schedule in self.package.schedules:
            interval = self.cleanup_interval if self.cleanup_interval is not None else schedule.rate_seconds
            self.schedules.append((self.function(schedule.function), interval, schedule.rule))
        if self.package.notifications:
            self.relay = self._relay(self.package.notifications)

    def _poller(self, mapping: QueueMapping) -> QueuePoller:
        queue_url = self.sqs.get_queue_url(QueueName=mapping.queue)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        function = self.function(mapping.function)
        return QueuePoller(
            self.sqs,
            queue_url,
            arn,
            function,
            batch_size=mapping.batch_size,
            report_batch_item_failures=mapping.report_batch_item_failures,
            retry_delay=self.retry_delay,
            # Lambda requires the queue's visibility timeout to cover the function's timeout.
            visibility_timeout=int(function.timeout_seconds) + 5,
            duplicate_deliveries=self.duplicate_deliveries,
        )

    def _relay(self, notifications: list[StorageNotification]) -> StorageEventRelay:
        dlq_arn = self.event_dead_letter_arn
        if dlq_arn is None:
            dlq_url = self.sqs.create_queue(QueueName=f"{NOTIFICATION_QUEUE}-dlq")["QueueUrl"]
            dlq_arn = self.sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": NOTIFICATION_MAX_RECEIVES})
        queue_url = self.sqs.create_queue(QueueName=NOTIFICATION_QUEUE, Attributes={"RedrivePolicy": redrive})[
            "QueueUrl"
        ]
        arn = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        by_bucket: dict[str, list[dict[str, Any]]] = {}
        functions: dict[str, Function] = {}
        for notification in notifications:
            function = functions.setdefault(notification.function, self.function(notification.function))
            rules = [
                {"Name": n, "Value": v} for n, v in (("prefix", notification.prefix), ("suffix", notification.suffix)) if v
            ]
            configuration: dict[str, Any] = {"Id": function.name, "QueueArn": arn, "Events": list(notification.events)}
            if rules:
                configuration["Filter"] = {"Key": {"FilterRules": rules}}
            by_bucket.setdefault(notification.bucket, []).append(configuration)
        for bucket, configurations in by_bucket.items():
            self.s3.put_bucket_notification_configuration(
                Bucket=bucket, NotificationConfiguration={"QueueConfigurations": configurations}
            )
        return StorageEventRelay(self.sqs, queue_url, functions, retry_delay=self.retry_delay)

    def start(self) -> None:
        self.setup()
        loops: list[tuple[str, Callable[[], None]]] = [
            (f"sqs-{p.function.name}", self._loop(p.poll_once)) for p in self.pollers
        ]
        if self.relay is not None:
            loops.append(("storage-events", self._loop(self.relay.poll_once)))
        for function, interval, rule in self.schedules:
            loops.append((f"schedule-{function.name}", self._schedule_loop(function, interval, rule)))
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

    def _schedule_loop(self, function: Function, interval: float, rule: str) -> Callable[[], None]:
        def run() -> None:
            while not self.stopping.wait(interval):
                self.run_schedule(function, rule)

        return run

    def run_schedules(self) -> None:
        for function, _, rule in self.schedules:
            self.run_schedule(function, rule)

    @staticmethod
    def run_schedule(function: Function, rule: str) -> None:
        try:
            function.invoke(scheduled_event(rule))
        except Exception as exc:
            log.warning("%s failed: %s", function.name, exc)

    def stop(self, timeout: float = 3.0) -> None:
        self.stopping.set()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))

