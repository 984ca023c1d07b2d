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

import re
from datetime import timedelta
from typing import Any

from botocore.exceptions import ClientError
from pydantic import ValidationError

from chalicelib.attachments.models import MAX_ATTACHMENTS_PER_ITEM, AttachmentCreate
from chalicelib.config.settings import Settings, require
from chalicelib.files import uploads
from chalicelib.items.models import to_field_errors
from chalicelib.items.records import Completion, ItemRecord
from chalicelib.items.repository import ItemRepository, is_live
from chalicelib.limits import ID_PATTERN
from chalicelib.problems import Problem, field_errors, not_found
from chalicelib.store import aws, layout
from chalicelib.store import transactions as dynamo_batch
from chalicelib.store.codec import Expression, from_item, to_attr, to_item
from chalicelib.store.layout import attachment_key, attachment_sk, due_pk, tenant_pk
from chalicelib.store.writes import CompanionRefused, cancellation_reasons
from chalicelib.util import clock, ulid

_ID = re.compile(ID_PATTERN)


def belongs_to(record: dict[str, Any], item: ItemRecord | dict[str, Any]) -> bool:
    created_at = item.created_at if isinstance(item, ItemRecord) else item.get("created_at")
    return bool(record.get("item_created_at") == created_at)


class AttachmentService:
    """The attachment routes, and the processing of storage events for attachments."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.table = require(settings.table_name, "TABLE_NAME")
        self.items = ItemRepository(self.table)

    @property
    def bucket(self) -> str:
        return require(self.settings.bucket_name, "BUCKET_NAME")

    # -- API ------------------------------------------------------------------------------
    def create(self, tenant: str, item_id: str, body: Any, completion: Completion | None = None) -> dict[str, Any]:
        """Create a pending attachment; ``completion`` (given the answer) may return one more
        transaction entry to write with it — the idempotency record of the request."""
        _check_id(item_id)
        try:
            model = AttachmentCreate.model_validate(body)
        except ValidationError as exc:
            raise field_errors("validation-error", to_field_errors(exc)) from exc
        limit = self.settings.max_attachment_bytes
        if model.size > limit:
            raise field_errors("validation-error", [{"pointer": "/size", "detail": f"must be at most {limit} bytes"}])
        item = self.items.get(tenant, item_id)
        if item is None:
            raise not_found()
        now = clock.now()
        attachment_id = ulid.new()
        pk, sk = tenant_pk(tenant), attachment_sk(item_id, attachment_id)
        record: dict[str, Any] = {
            "pk": pk,
            "sk": sk,
            "id": attachment_id,
            "item_id": item_id,
            "item_created_at": item.created_at,
            "filename": model.filename,
            "content_type": model.content_type,
            "size": model.size,
            "status": "pending",
            "created_at": clock.format_timestamp(now),
            "updated_at": clock.format_timestamp(now),
            "due_pk": due_pk(pk, sk),
            "due_at": clock.format_timestamp(now + timedelta(seconds=self.settings.upload_window_seconds)),
        }
        expr = Expression()
        count = expr.name("attachment_count")
        expires = expr.name("expires_at")
        condition = (
            f"{expr.name('created_at')} = {expr.value(item.created_at)}"
            f" AND (attribute_not_exists({expires}) OR {expires} > {expr.value(record['created_at'])})"
            f" AND (attribute_not_exists({count}) OR {count} < {expr.value(MAX_ATTACHMENTS_PER_ITEM)})"
        )
        answer = self.to_api(tenant, record)
        also = completion(answer) if completion is not None else None
        try:
            dynamo_batch.transact(
                [
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": self.items.key(tenant, item_id),
                            "UpdateExpression": f"ADD {count} {expr.value(1)}",
                            "ConditionExpression": condition,
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                            **expr.kwargs(),
                        }
                    },
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": to_item(record),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    *([also] if also is not None else []),
                ]
            )
        except ClientError as exc:
            reasons = cancellation_reasons(exc)
            if reasons and len(reasons) > 1 and reasons[1].get("Code") == "ConditionalCheckFailed":
                # The record's id is fresh: only an earlier attempt of this very call (its answer
                # lost, then retried by the client library) can have written it, with the rest.
                return answer
            if reasons and any(r.get("Code") == "ConditionalCheckFailed" for r in reasons[2:]):
                raise CompanionRefused() from exc
            if not reasons or reasons[0].get("Code") != "ConditionalCheckFailed":
                raise
            old = from_item(reasons[0]["Item"]) if reasons[0].get("Item") else None
            if old is None or not is_live(old, record["created_at"]) or old["created_at"] != item.created_at:
                raise not_found() from exc
            raise Problem(
                "conflict", f"an item has at most {MAX_ATTACHMENTS_PER_ITEM} attachments; delete one first"
            ) from exc
        return answer

    def list_for_item(self, tenant: str, item_id: str) -> dict[str, Any]:
        _check_id(item_id)
        item = self.items.get(tenant, item_id)
        if item is None:
            raise not_found()
        records = [r for r in self._records_of(tenant, item_id) if belongs_to(r, item)]
        return {"attachments": [self.to_api(tenant, r) for r in records]}

    def get(self, tenant: str, item_id: str, attachment_id: str) -> dict[str, Any]:
        _, record = self._find(tenant, item_id, attachment_id)
        return self.to_api(tenant, record)

    def delete(self, tenant: str, item_id: str, attachment_id: str) -> None:
        _, record = self._find(tenant, item_id, attachment_id)
        uploads.delete(self.bucket, [uploads.attachment_key(tenant, item_id, attachment_id)])
        if not self._delete_record(tenant, record, count_on_item=True):
            raise not_found("attachment")

    def _find(self, tenant: str, item_id: str, attachment_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        _check_id(item_id)
        if not _ID.match(attachment_id):
            raise not_found("attachment")
        item_key = self.items.key(tenant, item_id)
        keys = [item_key, attachment_key(tenant, item_id, attachment_id)]
        found = [from_item(i) for i in dynamo_batch.get(self.table, keys)]
        item = next((r for r in found if str(r["sk"]).startswith(layout.ITEM_PREFIX)), None)
        record = next((r for r in found if str(r["sk"]).startswith(layout.ATTACHMENT_PREFIX)), None)
        if item is None or not is_live(item, clock.now_text()):
            raise not_found()
        if record is None or not belongs_to(record, item):
            raise not_found("attachment")
        return item, record

    def _records_of(self, tenant: str, item_id: str) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {}
        while True:
            response = aws.dynamodb().query(
                TableName=self.table,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                ExpressionAttributeValues={
                    ":pk": to_attr(tenant_pk(tenant)),
                    ":prefix": to_attr(layout.attachments_of(item_id)),
                },
                ConsistentRead=True,
                **kwargs,
            )
            records += [from_item(i) for i in response.get("Items", [])]
            if "LastEvaluatedKey" not in response:
                return records
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _delete_record(
        self, tenant: str, record: dict[str, Any], *, count_on_item: bool, only_if_pending: bool = False
    ) -> bool:
        """Delete the record (and count it off its item when that incarnation still exists).

        Returns False when the record was already gone (or, with ``only_if_pending``, no longer
        pending).
        """
        expr = Expression()
        condition = f"attribute_exists(pk) AND {expr.name('item_created_at')} = {expr.value(record['item_created_at'])}"
        if only_if_pending:
            condition += f" AND {expr.name('status')} = {expr.value('pending')}"
        delete = {
            "TableName": self.table,
            "Key": attachment_key(tenant, record["item_id"], record["id"]),
            "ConditionExpression": condition,
            **expr.kwargs(),
        }
        if count_on_item:
            item_expr = Expression()
            count = item_expr.name("attachment_count")
            update = {
                "TableName": self.table,
                "Key": self.items.key(tenant, record["item_id"]),
                "UpdateExpression": f"ADD {count} {item_expr.value(-1)}",
                "ConditionExpression": (
                    f"{item_expr.name('created_at')} = {item_expr.value(record['item_created_at'])}"
                    f" AND {count} > {item_expr.value(0)}"
                ),
                **item_expr.kwargs(),
            }
            try:
                dynamo_batch.transact([{"Delete": delete}, {"Update": update}])
                return True
            except ClientError as exc:
                reasons = cancellation_reasons(exc)
                if not reasons:
                    raise
                if reasons[0].get("Code") == "ConditionalCheckFailed":
                    return False
                if reasons[1].get("Code") != "ConditionalCheckFailed":
                    raise
                # That incarnation of the item is gone: nothing to count off.
        try:
            aws.dynamodb().delete_item(**delete)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def to_api(self, tenant: str, record: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = {
            "id": record["id"],
            "item_id": record["item_id"],
            "filename": record["filename"],
            "content_type": record["content_type"],
            "size": int(record["size"]),
            "status": record["status"],
            "created_at": record["created_at"],
            "updated_at": record["updated_at"],
        }
        key = uploads.attachment_key(tenant, record["item_id"], record["id"])
        if record["status"] == "pending":
            expires_at = uploads.form_expiry(record["created_at"], self.settings.upload_window_seconds)
            if expires_at is not None:
                result["upload"] = uploads.upload_form(
                    self.bucket, key, record["content_type"], int(record["size"]), expires_at
                )
        elif record["status"] == "ready":
            result["download_url"] = uploads.download_url(self.bucket, key, record["filename"], record["content_type"])
        else:
            result["rejection_reason"] = record.get("rejection_reason", "")
        return result

    # -- storage events -------------------------------------------------------------------
    def process_upload(self, bucket: str, key: str) -> str:
        """Check a stored object against its attachment; returns what was done (for the log)."""
        parsed = uploads.parse_attachment_key(key)
        if parsed is None or bucket != self.bucket:
            return "ignored: not an attachment key of this stage"
        response = aws.dynamodb().get_item(
            TableName=self.table,
            Key=attachment_key(parsed.tenant, parsed.item_id, parsed.attachment_id),
            ConsistentRead=True,
        )
        record = from_item(response["Item"]) if response.get("Item") else None
        if record is None or record["status"] == "rejected":
            uploads.delete(bucket, [key])
            return "removed: no attachment awaits this file"
        stored = uploads.head(bucket, key)
        if stored is None:
            return "ignored: the file is gone"
        reason = _mismatch(record, stored)
        if reason is None:
            if record["status"] == "ready":
                return "ignored: already ready"
            if self._mark(parsed.tenant, record, "ready"):
                return "ready"
            uploads.delete(bucket, [key])
            return "removed: the attachment was deleted meanwhile"
        self._mark(parsed.tenant, record, "rejected", reason)
        uploads.delete(bucket, [key])
        return f"rejected: {reason}"

    def _mark(self, tenant: str, record: dict[str, Any], status: str, reason: str | None = None) -> bool:
        expr = Expression()
        sets = [
            f"{expr.name('status')} = {expr.value(status)}",
            f"{expr.name('updated_at')} = {expr.value(clock.now_text())}",
        ]
        if reason is not None:
            sets.append(f"{expr.name('rejection_reason')} = {expr.value(reason)}")
        condition = f"attribute_exists(pk) AND {expr.name('status')} <> {expr.value('rejected')}"
        try:
            aws.dynamodb().update_item(
                TableName=self.table,
                Key=attachment_key(tenant, record["item_id"], record["id"]),
                UpdateExpression="SET " + ", ".join(sets) + f" REMOVE {expr.name('due_pk')}, {expr.name('due_at')}",
                ConditionExpression=condition,
                **expr.kwargs(),
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    # -- cleanup --------------------------------------------------------------------------
    def expire_pending(self, tenant: str, sort_key_: str) -> str:
        """A pending attachment whose upload window has closed: check once more, else remove it."""
        response = aws.dynamodb().get_item(
            TableName=self.table, Key=layout.key(tenant_pk(tenant), sort_key_), ConsistentRead=True
        )
        if not response.get("Item"):
            return "gone"
        record = from_item(response["Item"])
        if record["status"] != "pending" or str(record.get("due_at", "~")) > clock.now_text():
            return "not due"
        key = uploads.attachment_key(tenant, record["item_id"], record["id"])
        if uploads.head(self.bucket, key) is not None:
            # Uploaded in time but its event has not been processed (yet): process it now.
            return self.process_upload(self.bucket, key)
        self._delete_record(tenant, record, count_on_item=True, only_if_pending=True)
        return "removed"

    def purge(self, tenant: str, item_id: str, item_created_at: str) -> int:
        """Remove every attachment (files, then records) of one gone incarnation of an item."""
        records = [r for r in self._records_of(tenant, item_id) if r.get("item_created_at") == item_created_at]
        if not records:
            return 0
        uploads.delete(self.bucket, [uploads.attachment_key(tenant, item_id, r["id"]) for r in records])
        dynamo_batch.write(self.table, [dynamo_batch.delete(attachment_key(tenant, item_id, r["id"])) for r in records])
        return len(records)


def _mismatch(record: dict[str, Any], stored: uploads.StoredObject) -> str | None:
    if stored.size != int(record["size"]):
        return f"the uploaded file has {stored.size} bytes, {int(record['size'])} were declared"
    if uploads.media_type(stored.content_type) != record["content_type"]:
        return f"the uploaded file is {stored.content_type or 'of no type'}, {record['content_type']} was declared"
    return None


def _check_id(item_id: str) -> None:
    if not _ID.match(item_id):
        raise not_found()
