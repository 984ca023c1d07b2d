"""Bodies of the event handlers (storage events, work queue, schedule), kept out of ``app.py``.

Each handler imports only what it runs (a function's cold start is its imports), so the
imports below are local on purpose.

A storage event is processed record by record: a record that is malformed or not ours is logged
and skipped; a record that fails does not stop the others, and the invocation raises at the end so
Lambda delivers the event again (each step is idempotent, so records already done are harmless).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib.config.settings import get_settings
from chalicelib.files import uploads
from chalicelib.util import metrics
from chalicelib.util.observability import logger

# What an attachment's storage event ended in -> the metric counting it.
ATTACHMENT_VERDICTS = {"ready": "AttachmentsReady", "rejected": "AttachmentsRejected"}


class EventRecordsError(RuntimeError):
    """Some records of an event failed; the event is to be delivered again."""


def _each_object(event: Any, kind: str, process: Callable[[str, str], str]) -> None:
    failures = 0
    for record in uploads.object_events(event):
        if record is None:
            logger().warning("storage event record skipped: not an object event", kind=kind)
            continue
        try:
            outcome = process(record.bucket, record.key)
        except Exception:
            failures += 1
            logger().exception("storage event record failed", kind=kind, key=record.key)
            continue
        logger().info("storage event processed", kind=kind, key=record.key, outcome=outcome)
    if failures:
        raise EventRecordsError(f"{failures} {kind} records failed")


def attachment_uploaded(event: Any) -> None:
    from chalicelib.attachments.service import AttachmentService

    process = AttachmentService(get_settings()).process_upload

    def counted(bucket: str, key: str) -> str:
        outcome = process(bucket, key)
        verdict = outcome.split(":", 1)[0]
        if verdict in ATTACHMENT_VERDICTS:
            metrics.count(metrics.ATTACHMENTS, ATTACHMENT_VERDICTS[verdict])
        return outcome

    _each_object(event, "attachment", counted)


def import_uploaded(event: Any, context: Any = None) -> None:
    from chalicelib.imports.pipeline import ImportPipeline, deadline_for

    _each_object(event, "import", ImportPipeline(get_settings(), deadline_for(context)).process_upload)


def work_messages(event: Any) -> dict[str, Any]:
    from chalicelib.imports.consumer import ImportConsumer
    from chalicelib.queues import batch as queue_batch

    return queue_batch.process(event, ImportConsumer(get_settings()).apply)


def cleanup(context: Any) -> dict[str, Any]:
    from chalicelib.cleanup.job import CleanupJob, deadline_for

    return CleanupJob(get_settings(), deadline_for(context)).run()
