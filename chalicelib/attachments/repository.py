"""Every read and write of attachments in the table, and of the attachment count of their item.

Keys come from ``store.layout``; records leave as ``AttachmentRecord``. An item counts its
attachments (``attachment_count``): a new attachment is written together with the increment, a
deleted one with the decrement, both conditional on that incarnation of the item.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.attachments.records import AttachmentRecord
from chalicelib.files.uploads import window_end
from chalicelib.store import aws, layout
from chalicelib.store import transactions as dynamo_batch
from chalicelib.store.codec import Expression, from_item, record_of, stored_fields, to_attr, to_item
from chalicelib.store.layout import attachment_key, attachment_sk, item_key, tenant_pk
from chalicelib.store.transactions import ConditionsFailed
from chalicelib.store.writes import applied
from chalicelib.util import clock


def to_record(stored: Mapping[str, object]) -> AttachmentRecord:
    return record_of(AttachmentRecord, stored)


class ItemRefused(Exception):
    """The item did not take the attachment: ``old`` is the item as it was (None: gone)."""

    def __init__(self, old: dict[str, object] | None) -> None:
        super().__init__("the item refused the attachment")
        self.old = old


class AttachmentRepository:
    def __init__(self, table: str) -> None:
        self.table = table

    def get(self, tenant: str, item_id: str, attachment_id: str) -> AttachmentRecord | None:
        return self._get(attachment_key(tenant, item_id, attachment_id))

    def at(self, tenant: str, sort_key: str) -> AttachmentRecord | None:
        """The attachment whose sort key (as found in ``due-index``) is ``sort_key``."""
        return self._get(layout.key(tenant_pk(tenant), sort_key))

    def _get(self, key: layout.Key) -> AttachmentRecord | None:
        response = aws.dynamodb().get_item(TableName=self.table, Key=key, ConsistentRead=True)
        return to_record(from_item(response["Item"])) if response.get("Item") else None

    def with_item(
        self, tenant: str, item_id: str, attachment_id: str
    ) -> tuple[dict[str, object] | None, AttachmentRecord | None]:
        """One consistent ``BatchGetItem``: the item (as stored) and the attachment, each if it exists."""
        keys = [item_key(tenant, item_id), attachment_key(tenant, item_id, attachment_id)]
        found = [from_item(i) for i in dynamo_batch.get(self.table, keys)]
        item = next((r for r in found if str(r["sk"]).startswith(layout.ITEM_PREFIX)), None)
        record = next((r for r in found if str(r["sk"]).startswith(layout.ATTACHMENT_PREFIX)), None)
        return item, to_record(record) if record is not None else None

    def of_item(self, tenant: str, item_id: str) -> list[AttachmentRecord]:
        """Every attachment record under the item's id, of any of its incarnations."""
        records: list[AttachmentRecord] = []
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
            records += [to_record(from_item(i)) for i in response.get("Items", [])]
            if "LastEvaluatedKey" not in response:
                return records
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def create(
        self, tenant: str, record: AttachmentRecord, *, window_seconds: int, at_most: int, also: dict[str, object] | None = None
    ) -> None:
        """Write a pending attachment (due when its upload window closes), counted on its item (alive, that incarnation, fewer than
        ``at_most`` attachments), with ``also``, a companion entry; all or nothing.

        Raises ``ItemRefused`` when the item's condition failed, ``CompanionRefused`` when only the
        companion's did.
        """
        pk, sk = tenant_pk(tenant), attachment_sk(record.item_id, record.id)
        # Due in the cleanup job's index when the upload window closes.
        closes = clock.format_timestamp(window_end(record.created_at, window_seconds))
        stored = {"pk": pk, "sk": sk, **stored_fields(record), **layout.due(pk, sk, closes)}
        expr = Expression()
        count = expr.name("attachment_count")
        expires = expr.name("expires_at")
        condition = (
            f"{expr.name('created_at')} = {expr.value(record.item_created_at)}"
            f" AND (attribute_not_exists({expires}) OR {expires} > {expr.value(record.created_at)})"
            f" AND (attribute_not_exists({count}) OR {count} < {expr.value(at_most)})"
        )
        count_on_item = {
            "Update": {
                "TableName": self.table,
                "Key": item_key(tenant, record.item_id),
                "UpdateExpression": f"ADD {count} {expr.value(1)}",
                "ConditionExpression": condition,
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                **expr.kwargs(),
            }
        }
        put = {"Put": {"TableName": self.table, "Item": to_item(stored), "ConditionExpression": "attribute_not_exists(pk)"}}
        try:
            # False: an earlier attempt of this very call wrote it all (the record's id is fresh).
            dynamo_batch.create_fresh([count_on_item, put], also, fresh=1)
        except ConditionsFailed as refused:
            raise ItemRefused(refused.failed.get(0)) from refused

    def delete(self, tenant: str, record: AttachmentRecord, *, only_if_pending: bool = False) -> bool:
        """Delete the record (and count it off its item when that incarnation still exists).

        Returns False when the record was already gone (or, with ``only_if_pending``, no longer
        pending).
        """
        expr = Expression()
        condition = f"attribute_exists(pk) AND {expr.name('item_created_at')} = {expr.value(record.item_created_at)}"
        if only_if_pending:
            condition += f" AND {expr.name('status')} = {expr.value('pending')}"
        delete = {
            "TableName": self.table,
            "Key": attachment_key(tenant, record.item_id, record.id),
            "ConditionExpression": condition,
            **expr.kwargs(),
        }
        item_expr = Expression()
        count = item_expr.name("attachment_count")
        count_off = {
            "TableName": self.table,
            "Key": item_key(tenant, record.item_id),
            "UpdateExpression": f"ADD {count} {item_expr.value(-1)}",
            "ConditionExpression": (
                f"{item_expr.name('created_at')} = {item_expr.value(record.item_created_at)}"
                f" AND {count} > {item_expr.value(0)}"
            ),
            **item_expr.kwargs(),
        }
        try:
            dynamo_batch.transact_with([{"Delete": delete}, {"Update": count_off}])
            return True
        except ConditionsFailed as refused:
            if 0 in refused.failed:
                return False
            # That incarnation of the item is gone: nothing to count off.
        return applied(aws.dynamodb().delete_item, **delete)

    def mark(self, tenant: str, record: AttachmentRecord, status: str, reason: str | None = None) -> bool:
        """Set the status (out of ``due-index``); False when the record is gone or was rejected."""
        expr = Expression()
        sets = [
            f"{expr.name('status')} = {expr.value(status)}",
            f"{expr.name('updated_at')} = {expr.value(clock.now_text())}",
        ]
        if reason is not None:
            sets.append(f"{expr.name('rejection_reason')} = {expr.value(reason)}")
        condition = f"attribute_exists(pk) AND {expr.name('status')} <> {expr.value('rejected')}"
        return applied(
            aws.dynamodb().update_item,
            TableName=self.table,
            Key=attachment_key(tenant, record.item_id, record.id),
            UpdateExpression="SET " + ", ".join(sets) + f" REMOVE {expr.name('due_pk')}, {expr.name('due_at')}",
            ConditionExpression=condition,
            **expr.kwargs(),
        )

    def delete_all(self, tenant: str, records: list[AttachmentRecord]) -> None:
        """Delete the records, unconditionally (``BatchWriteItem``)."""
        dynamo_batch.write(
            self.table, [dynamo_batch.delete(attachment_key(tenant, r.item_id, r.id)) for r in records]
        )
