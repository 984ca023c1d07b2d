"""The scheduled cleanup job.

It physically removes what the API already treats as gone or abandoned:

- expired items, with their attachments' records and stored files;
- attachments of deleted (or expired and replaced) items, found through their tombstones;
- pending attachments and imports whose upload window has closed (an import becomes ``failed``);
- imports still ``processing`` at their deadline (``IMPORT_DEADLINE_SECONDS`` after the file
  arrived): they become ``failed``, saying how many rows were imported;
- the source files of finished imports.

Its work is found through the sparse ``due-index`` (``due_at <= now`` on each shard), never a
``Scan``, so a run costs O(what is due), not O(table). The index is eventually consistent and
projects keys only, so every step re-reads or conditions on the base record: an item whose
``expires_at`` was extended meanwhile is not deleted, a pending attachment that was uploaded is
checked instead of removed. Steps are idempotent, and a record leaves the index only once its
work is done, so a run that ends at its time budget (or fails) is simply resumed by the next.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from typing import Any

from chalicelib.attachments.service import AttachmentService
from chalicelib.config.settings import Settings, require
from chalicelib.files import uploads
from chalicelib.imports import repository as imports
from chalicelib.imports.records import FINAL
from chalicelib.items.repository import ItemRepository
from chalicelib.store import due, layout
from chalicelib.util import clock, metrics
from chalicelib.util.observability import logger

# Outcomes of a visit that removed the record it was due for (the others found nothing to do).
REMOVALS = frozenset({
    "expired item deleted", "tombstone cleared", "attachment removed", "import source removed", "import upload window closed",
})


class CleanupJob:
    def __init__(self, settings: Settings, deadline: float) -> None:
        """``deadline`` is a ``time.monotonic()`` value: no new work starts after it."""
        self.settings = settings
        self.table = require(settings.table_name, "TABLE_NAME")
        self.bucket = require(settings.bucket_name, "BUCKET_NAME")
        self.deadline = deadline
        self.items = ItemRepository(self.table)
        self.attachments = AttachmentService(settings)
        self.report: Counter[str] = Counter()
        self.deleted: Counter[str] = Counter()  # records removed, by kind (the CleanupDeleted metric)
        self.oldest_due: str | None = None

    def run(self) -> dict[str, Any]:
        """One run; returns what it did, and whether it got through everything due."""
        started = clock.monotonic()
        now = clock.now_text()
        shards = due.shards()
        start = random.randrange(len(shards))  # an interrupted run does not always favour shard 0
        complete = True
        for shard in shards[start:] + shards[:start]:
            if not self._shard(shard, now):
                complete = False
                break
        result = {"complete": complete, **self.report}
        lag = clock.seconds_between(self.oldest_due, now) if self.oldest_due else 0.0
        logger().info("cleanup run", lag_seconds=lag, **result)
        metrics.record(metrics.CLEANUP, {"CleanupRuns": 1, "CleanupDuration": (clock.monotonic() - started) * 1000,
                                         "CleanupLag": max(0.0, lag)})
        for kind, deleted in sorted(self.deleted.items()):
            metrics.count(metrics.CLEANUP_DELETED, "CleanupDeleted", deleted, Kind=kind)
        return result

    def _time_left(self) -> bool:
        return time.monotonic() < self.deadline

    def _shard(self, shard: str, now: str) -> bool:
        for pk, sk, due_at in due.due_keys(self.table, shard, now):
            if self.oldest_due is None or due_at < self.oldest_due:
                self.oldest_due = due_at
            if not self._time_left():
                return False
            self._visit(pk, sk)
        return self._time_left()

    def _visit(self, pk: str, sk: str) -> None:
        tenant = layout.tenant_of(pk)
        found = layout.kind_of(sk)
        if tenant is None or found is None:
            self.report["unknown"] += 1
            return
        kind, rest = found
        try:
            if kind is layout.Kind.ITEM:
                outcome = self._expired_item(tenant, rest)
            elif kind is layout.Kind.TOMBSTONE:
                outcome = self._tombstone(tenant, sk)
            elif kind is layout.Kind.ATTACHMENT:
                outcome = "attachment " + self.attachments.expire_pending(tenant, sk).split(":")[0]
            else:
                outcome = self._import(tenant, rest)
        except Exception as exc:  # one bad record must not stop the run
            logger().exception("cleanup step failed; the next run retries it", sk=sk, error=str(exc))
            outcome = "failed"
        self.report[outcome] += 1
        if outcome in REMOVALS:
            self.deleted[kind.name.lower()] += 1

    def _expired_item(self, tenant: str, item_id: str) -> str:
        now = clock.now_text()
        deleted, old = self.items.delete_if_expired(tenant, item_id, now)
        if deleted:
            return "expired item deleted"
        if old is None:
            return "expired item gone"
        if old.expires_at is None or old.expires_at > now:
            return "expired item extended"
        # Expired with attachments: their files and records first, then the item, so a run
        # interrupted in between leaves the item in the index for the next one.
        self.report["attachment files deleted"] += self.attachments.purge(tenant, item_id, old.created_at)
        if not self.items.delete_expired_incarnation(tenant, old, now):
            return "expired item gone"
        return "expired item deleted"

    def _tombstone(self, tenant: str, sk: str) -> str:
        record = self.items.tombstone_at(tenant, sk)
        if record is None:
            return "tombstone gone"
        self.report["attachment files deleted"] += self.attachments.purge(
            tenant, record.item_id, record.item_created_at
        )
        self.items.clear_tombstone(tenant, sk)
        return "tombstone cleared"

    def _import(self, tenant: str, import_id: str) -> str:
        record = imports.get(self.table, tenant, import_id)
        if record is None:
            return "import gone"
        if (record.due_at or "~") > clock.now_text():
            return "import not due"
        status = record.status
        if status == "pending_upload":
            window = self.settings.upload_window_seconds
            detail = f"the file was not uploaded within {window} seconds"
            if not imports.fail(
                self.table, tenant, import_id, detail=detail, line=None, from_status=("pending_upload",)
            ):
                return "import moved on"
            status = "failed"
        if status == "processing":
            # Past its deadline: whatever it waits for (a lost event, a chunk that never came) will
            # not come now; the import ends, saying how far it got.
            deadline = self.settings.import_deadline_seconds
            done = f"{record.rows_imported} of {_count(record.rows_total)} rows were imported"
            detail = f"the import did not finish within {deadline} seconds; {done}"
            if not imports.fail(self.table, tenant, import_id, detail=detail, line=None, from_status=("processing",)):
                return "import moved on"
            self.report["import deadline passed"] += 1
            status = "failed"
        if status not in FINAL:
            return "import not due"
        uploads.delete(
            self.bucket, [uploads.import_key(tenant, import_id), uploads.import_work_key(tenant, import_id)]
        )
        imports.settle(self.table, tenant, import_id, status)
        return "import source removed" if record.status != "pending_upload" else "import upload window closed"


def _count(value: Any) -> str:
    return str(int(value)) if value is not None else "an unknown number of"


def deadline_for(context: Any, default_seconds: float = 60.0) -> float:
    """Stop starting new work with a safety margin before the invocation's time runs out."""
    remaining = default_seconds
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        remaining = context.get_remaining_time_in_millis() / 1000
    margin = min(10.0, remaining * 0.2)
    return time.monotonic() + max(0.0, remaining - margin)
