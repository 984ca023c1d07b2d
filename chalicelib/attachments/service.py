"""Attachments: records in DynamoDB, files in S3, and the checks that join the two.

An attachment belongs to one *incarnation* of an item: its record keeps the item's
``created_at`` (``item_created_at``). When the item is deleted, or expires and its id is taken by
a new item, the old attachments stop matching and vanish from the API at once, while their
records and files wait for the cleanup job, found through a tombstone in ``due-index``. An item
record counts its attachments (``attachment_count``), so the limit per item holds under
concurrent requests and an item without attachments is still deleted with one call.

States: ``pending`` (record written, upload form handed out; in ``due-index`` until the upload
window closes) → ``ready`` (the storage event was processed and the stored object has exactly the
declared size and content type) or ``rejected`` (it did not; the object is deleted).
"""

from __future__ import annotations

from typing import Any

from chalicelib.attachments.models import MAX_ATTACHMENTS_PER_ITEM, AttachmentCreate, parse_upload_request
from chalicelib.attachments.records import AttachmentRecord
from chalicelib.attachments.repository import AttachmentRepository, ItemRefused
from chalicelib.config.settings import Settings, require
from chalicelib.files import uploads
from chalicelib.items.repository import ItemRepository, is_live
from chalicelib.limits import is_valid_id
from chalicelib.problems import Problem, not_found
from chalicelib.store.transactions import Completion, answer_after
from chalicelib.util import clock, ulid
from chalicelib.util.jsontypes import JsonObject, JsonValue


class AttachmentService:
    """The attachment routes, and the processing of storage events for attachments."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.table = require(settings.table_name, "TABLE_NAME")
        self.items = ItemRepository(self.table)
        self.records = AttachmentRepository(self.table)

    @property
    def bucket(self) -> str:
        return require(self.settings.bucket_name, "BUCKET_NAME")

    # -- API ------------------------------------------------------------------------------
    def create(self, tenant: str, item_id: str, body: JsonValue, completion: Completion | None = None) -> JsonObject:
        """Create a pending attachment; ``completion`` (given the answer) may return one more
        transaction entry to write with it — the idempotency record of the request."""
        _check_id(item_id)
        model = parse_upload_request(AttachmentCreate, body, self.settings.max_attachment_bytes)
        item = self.items.get(tenant, item_id)
        if item is None:
            raise not_found()
        created = clock.now_text()
        record = AttachmentRecord(
            id=ulid.new(),
            item_id=item_id,
            item_created_at=item.created_at,
            filename=model.filename,
            content_type=model.content_type,
            size=model.size,
            status="pending",
            created_at=created, updated_at=created,
        )
        window = self.settings.upload_window_seconds

        def write(also: dict[str, object] | None) -> None:
            try:
                self.records.create(tenant, record, window_seconds=window, at_most=MAX_ATTACHMENTS_PER_ITEM, also=also)
            except ItemRefused as refused:
                old = refused.old
                if old is None or not is_live(old, record.created_at) or old["created_at"] != item.created_at:
                    raise not_found() from refused
                raise Problem(
                    "conflict", f"an item has at most {MAX_ATTACHMENTS_PER_ITEM} attachments; delete one first"
                ) from refused

        return answer_after(self.to_api(tenant, record), completion, write)

    def list_for_item(self, tenant: str, item_id: str) -> JsonObject:
        _check_id(item_id)
        item = self.items.get(tenant, item_id)
        if item is None:
            raise not_found()
        records = [r for r in self.records.of_item(tenant, item_id) if r.belongs_to(item.created_at)]
        return {"attachments": [self.to_api(tenant, r) for r in records]}

    def get(self, tenant: str, item_id: str, attachment_id: str) -> JsonObject:
        return self.to_api(tenant, self._find(tenant, item_id, attachment_id))

    def delete(self, tenant: str, item_id: str, attachment_id: str) -> None:
        record = self._find(tenant, item_id, attachment_id)
        uploads.delete(self.bucket, [uploads.attachment_key(tenant, item_id, attachment_id)])
        if not self.records.delete(tenant, record):
            raise not_found("attachment")

    def _find(self, tenant: str, item_id: str, attachment_id: str) -> AttachmentRecord:
        _check_id(item_id)
        if not is_valid_id(attachment_id):
            raise not_found("attachment")
        item, record = self.records.with_item(tenant, item_id, attachment_id)
        if item is None or not is_live(item, clock.now_text()):
            raise not_found()
        if record is None or not record.belongs_to(item.get("created_at")):
            raise not_found("attachment")
        return record

    def to_api(self, tenant: str, record: AttachmentRecord) -> JsonObject:
        result: dict[str, Any] = {
            "id": record.id,
            "item_id": record.item_id,
            "filename": record.filename,
            "content_type": record.content_type,
            "size": record.size,
            "status": record.status,
            "created_at": record.created_at,
            "updated_at": record.updated_at,
        }
        key = uploads.attachment_key(tenant, record.item_id, record.id)
        if record.status == "pending":
            expires_at = uploads.form_expiry(record.created_at, self.settings.upload_window_seconds)
            if expires_at is not None:
                result["upload"] = uploads.upload_form(self.bucket, key, record.content_type, record.size, expires_at)
        elif record.status == "ready":
            result["download_url"] = uploads.download_url(self.bucket, key, record.filename, record.content_type)
        else:
            result["rejection_reason"] = record.rejection_reason or ""
        return result

    # -- storage events -------------------------------------------------------------------
    def process_upload(self, bucket: str, key: str) -> str:
        """Check a stored object against its attachment; returns what was done (for the log)."""
        parsed = uploads.parse_attachment_key(key)
        if parsed is None or bucket != self.bucket:
            return "ignored: not an attachment key of this stage"
        record = self.records.get(parsed.tenant, parsed.item_id, parsed.attachment_id)
        if record is None or record.status == "rejected":
            uploads.delete(bucket, [key])
            return "removed: no attachment awaits this file"
        stored = uploads.head(bucket, key)
        if stored is None:
            return "ignored: the file is gone"
        reason = _mismatch(record, stored)
        if reason is None:
            if record.status == "ready":
                return "ignored: already ready"
            if self.records.mark(parsed.tenant, record, "ready"):
                return "ready"
            uploads.delete(bucket, [key])
            return "removed: the attachment was deleted meanwhile"
        self.records.mark(parsed.tenant, record, "rejected", reason)
        uploads.delete(bucket, [key])
        return f"rejected: {reason}"

    # -- cleanup --------------------------------------------------------------------------
    def expire_pending(self, tenant: str, sort_key_: str) -> str:
        """A pending attachment whose upload window has closed: check once more, else remove it."""
        record = self.records.at(tenant, sort_key_)
        if record is None:
            return "gone"
        if record.status != "pending" or (record.due_at or "~") > clock.now_text():
            return "not due"
        key = uploads.attachment_key(tenant, record.item_id, record.id)
        if uploads.head(self.bucket, key) is not None:
            # Uploaded in time but its event has not been processed (yet): process it now.
            return self.process_upload(self.bucket, key)
        self.records.delete(tenant, record, only_if_pending=True)
        return "removed"

    def purge(self, tenant: str, item_id: str, item_created_at: str) -> int:
        """Remove every attachment (files, then records) of one gone incarnation of an item."""
        records = [r for r in self.records.of_item(tenant, item_id) if r.belongs_to(item_created_at)]
        if not records:
            return 0
        uploads.delete(self.bucket, [uploads.attachment_key(tenant, item_id, r.id) for r in records])
        self.records.delete_all(tenant, records)
        return len(records)


def _mismatch(record: AttachmentRecord, stored: uploads.StoredObject) -> str | None:
    if stored.size != record.size:
        return f"the uploaded file has {stored.size} bytes, {record.size} were declared"
    if uploads.media_type(stored.content_type) != record.content_type:
        return f"the uploaded file is {stored.content_type or 'of no type'}, {record.content_type} was declared"
    return None


def _check_id(item_id: str) -> None:
    if not is_valid_id(item_id):
        raise not_found()
