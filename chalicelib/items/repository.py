"""Items in DynamoDB: keys, conditional writes, one round trip per operation.

Every write is conditional on the item being alive (present and not expired) and, when the
client sent ``If-Match``, on its version. On a failed condition DynamoDB hands back the item as it
was (``ReturnValuesOnConditionCheckFailure=ALL_OLD``), so telling 404 from 412 costs no extra read.

Every create and update also writes a fresh ``write_token`` and (updates) is conditional on the
stored token being another one. botocore retries a call whose response timed out; if DynamoDB had
applied the first attempt, the retry fails its condition and the returned item carries our own
token: the write happened, exactly once, and its result is that item. Without the token the
retry would apply an update twice, or report a create as a conflict with itself.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.store import aws, layout
from chalicelib.store import transactions as dynamo_batch
from chalicelib.store.codec import Expression, from_item, map_key, to_item
from chalicelib.store.layout import ITEM_PREFIX, due_pk, item_sk, tenant_pk
from chalicelib.store.writes import (
    CompanionRefused,
    ConditionNotMet,
    Precondition,
    applied,
    cancellation_reasons,
    conditional,
)
from chalicelib.util import clock, jsonutil

# DynamoDB's TTL is only a safety net behind the cleanup job, which also removes attached files;
# give the job a week to get there first.
TTL_GRACE = timedelta(days=7)
# Tombstones are due at once; DynamoDB's TTL is only the safety net behind the cleanup job.
TOMBSTONE_TTL = timedelta(days=30)


_LIVE = "attribute_exists(pk) AND (attribute_not_exists(expires_at) OR expires_at > {now})"


WRITE_TOKEN = "write_token"  # noqa: S105 - an attribute name, not a secret

# Given the item as the API shows it, a transaction entry to write together with it (or None).
Completion = Callable[[dict[str, Any]], dict[str, Any] | None]


class ItemExists(Exception):
    """The id is taken by a live item; ``existing`` is that item when DynamoDB returned it."""

    def __init__(self, item_id: str, existing: dict[str, Any] | None = None) -> None:
        super().__init__(item_id)
        self.existing = existing


class ExpressionTooLarge(Exception):
    """The write would need an expression over DynamoDB's limits; nothing was sent."""


# DynamoDB's limits on one expression (Developer Guide, "Constraints in Amazon DynamoDB",
# "Expression parameters"): "The maximum length of any expression string is 4 KB" and "The maximum
# number of operators or functions allowed in an UpdateExpression is 300".
MAX_EXPRESSION_BYTES = 4096
MAX_EXPRESSION_OPERATORS = 300
# Our own, lower bound on the actions (SET/REMOVE clauses) of one update: well inside both limits
# above for ordinary keys, and within what the local emulator's recursive expression parser can
# take (it fails near 150 clauses), so local and deployed stacks take the same path.
MAX_UPDATE_ACTIONS = 100
# Counted generously: comparators, arithmetic, logical keywords, functions, and the "=" of every
# SET action. Placeholders (#n1, :v1) hold none of these characters.
_OPERATOR = re.compile(r"<>|<=|>=|=|<|>|\+|-|\b(?:AND|OR|NOT|IN|BETWEEN)\b|\b[a-z_]+\(")


def within_expression_limits(*expressions: str) -> bool:
    return all(
        len(text.encode("utf-8")) <= MAX_EXPRESSION_BYTES and len(_OPERATOR.findall(text)) <= MAX_EXPRESSION_OPERATORS
        for text in expressions
    )


class ConditionFailed(Exception):
    """A conditional write did not apply; ``current`` is the live item, or None if there is none."""

    def __init__(self, current: dict[str, Any] | None) -> None:
        super().__init__("condition failed")
        self.current = current


@dataclass(frozen=True)
class ItemFields:
    """The writable fields of an item, validated."""

    name: str
    description: str | None
    tags: list[str]
    data: dict[str, Any]
    expires_at: datetime | None


def _new_write_token() -> str:
    return secrets.token_urlsafe(12)


def _written_by(record: dict[str, Any] | None, token: str) -> bool:
    """Whether ``record`` is the result of the write that carried ``token``."""
    return bool(record) and record.get(WRITE_TOKEN) == token  # type: ignore[union-attr]


def is_live(record: dict[str, Any], now_text: str) -> bool:
    expires_at = record.get("expires_at")
    return expires_at is None or expires_at > now_text


def to_api(record: dict[str, Any]) -> dict[str, Any]:
    """The stored record as the API shows it."""
    return {
        "id": record["id"],
        "name": record["name"],
        "description": record.get("description"),
        "tags": record.get("tags", []),
        "data": record.get("data", {}),
        "expires_at": record.get("expires_at"),
        "version": int(record["version"]),
        "created_at": record["created_at"],
        "updated_at": record["updated_at"],
    }


def _expiry_attributes(pk: str, sk: str, expires_at: datetime) -> dict[str, Any]:
    return {
        "expires_at": clock.format_timestamp(expires_at),
        # In seconds, not datetimes: an expiry in the last week of 9999 plus the grace is no date.
        "ttl": clock.epoch_seconds(expires_at) + int(TTL_GRACE.total_seconds()),
        "due_pk": due_pk(pk, sk),
        "due_at": clock.format_timestamp(expires_at),
    }


def _version_condition(expr: Expression, precondition: Precondition) -> str:
    if precondition is None or precondition == "*":
        return ""
    if not precondition:
        return " AND attribute_not_exists(pk)"  # nothing can match: an impossible condition
    placeholders = ", ".join(expr.value(v) for v in sorted(precondition))
    return f" AND {expr.name('version')} IN ({placeholders})"


def _live_condition(expr: Expression, now_text: str) -> str:
    return _LIVE.format(now=expr.value(now_text))


class ItemRepository:
    def __init__(self, table_name: str) -> None:
        self.table = table_name

    @staticmethod
    def key(tenant: str, item_id: str) -> dict[str, Any]:
        return layout.item_key(tenant, item_id)

    def get(self, tenant: str, item_id: str) -> dict[str, Any] | None:
        response = aws.dynamodb().get_item(TableName=self.table, Key=self.key(tenant, item_id))
        item = response.get("Item")
        if not item:
            return None
        record = from_item(item)
        return record if is_live(record, clock.now_text()) else None

    @staticmethod
    def new_record(tenant: str, item_id: str, fields: ItemFields, now: str, import_ref: str | None = None) -> dict[str, Any]:
        """The stored form of a new item (version 1); ``import_ref`` marks a row written by an import."""
        pk, sk = tenant_pk(tenant), item_sk(item_id)
        record: dict[str, Any] = {
            "pk": pk,
            "sk": sk,
            "id": item_id,
            "name": fields.name,
            "tags": fields.tags,
            "data": fields.data,
            "data_size": jsonutil.compact_size(fields.data),
            "version": 1,
            "created_at": now,
            "updated_at": now,
            WRITE_TOKEN: _new_write_token(),
        }
        if fields.description is not None:
            record["description"] = fields.description
        if fields.expires_at is not None:
            record.update(_expiry_attributes(pk, sk, fields.expires_at))
        if import_ref is not None:
            record["import_ref"] = import_ref
        return record

    @staticmethod
    def free_id_condition(expr: Expression, now: str) -> str:
        """An id is free when no item holds it, or its item has expired (an expired item is gone)."""
        return f"attribute_not_exists(pk) OR {expr.name('expires_at')} <= {expr.value(now)}"

    def create_action(self, tenant: str, item_id: str, fields: ItemFields, now: str, import_ref: str) -> dict[str, Any]:
        """The create as one ``TransactWriteItems`` action (bulk imports write rows this way)."""
        expr = Expression()
        condition = self.free_id_condition(expr, now)
        record = self.new_record(tenant, item_id, fields, now, import_ref)
        return {"Put": {"TableName": self.table, "Item": to_item(record), "ConditionExpression": condition, **expr.kwargs()}}

    def create(
        self, tenant: str, item_id: str, fields: ItemFields, completion: Completion | None = None
    ) -> dict[str, Any]:
        """Create the item; ``completion`` may return a transaction entry to write atomically with it
        (an idempotency record)."""
        now = clock.now_text()
        record = self.new_record(tenant, item_id, fields, now)
        also = completion(to_api(record)) if completion is not None else None
        replaced = self._put_new(record, now) if also is None else self._create_in_transaction(record, also, now)
        if replaced:
            # An expired item held this id; its attachments are not the new item's.
            self.bury_attachments_of(tenant, replaced)
        return record

    @staticmethod
    def tombstone(tenant: str, item_id: str, item_created_at: str) -> dict[str, Any]:
        """The record that sends the cleanup job after the attachments of a gone item incarnation."""
        pk, sk = tenant_pk(tenant), layout.tombstone_sk(item_id, item_created_at)
        now = clock.now()
        return {
            "pk": pk,
            "sk": sk,
            "item_id": item_id,
            "item_created_at": item_created_at,
            "due_pk": due_pk(pk, sk),
            "due_at": clock.format_timestamp(now),
            "ttl": clock.epoch_seconds(now + TOMBSTONE_TTL),
        }

    def bury_attachments_of(self, tenant: str, old_item: dict[str, Any]) -> None:
        """After an expired item was replaced: leave a tombstone if it had attachments."""
        if int(old_item.get("attachment_count", 0)) > 0:
            record = self.tombstone(tenant, str(old_item["id"]), str(old_item["created_at"]))
            aws.dynamodb().put_item(TableName=self.table, Item=to_item(record))

    def _put_new(self, record: dict[str, Any], now: str) -> dict[str, Any] | None:
        """One conditional ``PutItem``; returns the expired item it replaced, if any."""
        expr = Expression()
        condition = self.free_id_condition(expr, now)
        try:
            response = conditional(
                aws.dynamodb().put_item,
                TableName=self.table,
                Item=to_item(record),
                ConditionExpression=condition,
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **expr.kwargs(),
            )
        except ConditionNotMet as failed:
            if _written_by(failed.old, record[WRITE_TOKEN]):
                return None  # an earlier attempt of this call wrote it; its response was lost
            raise ItemExists(record["id"], failed.old) from failed
        replaced = response.get("Attributes")
        return from_item(replaced) if replaced else None

    def _create_in_transaction(self, record: dict[str, Any], also: dict[str, Any], now: str) -> dict[str, Any] | None:
        """The item's ``Put`` and ``also``, both or neither; returns the expired item replaced, if any.

        botocore gives the call one ``ClientRequestToken`` for all its attempts, so DynamoDB applies
        a retried transaction once; the write token covers emulators that ignore that token. A
        transaction cannot return the item it replaced, so the id is claimed only if free, and when an
        expired item holds it (known from the failed condition) a second transaction replaces
        exactly that item.
        """
        expired: dict[str, Any] | None = None
        for _attempt in range(2):
            expr = Expression()
            if expired is None:
                condition = "attribute_not_exists(pk)"
            else:
                condition = (
                    f"{expr.name('created_at')} = {expr.value(expired['created_at'])}"
                    f" AND {expr.name('expires_at')} <= {expr.value(now)}"
                )
            put = {
                "TableName": self.table,
                "Item": to_item(record),
                "ConditionExpression": condition,
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                **expr.kwargs(),
            }
            try:
                entries: Any = [{"Put": put}, also]
                aws.dynamodb().transact_write_items(TransactItems=entries)
            except ClientError as exc:
                reasons = cancellation_reasons(exc)
                if not reasons:
                    raise
                item_reason, *other_reasons = reasons
                if item_reason.get("Code") == "ConditionalCheckFailed":
                    old = from_item(item_reason["Item"]) if item_reason.get("Item") else None
                    if _written_by(old, record[WRITE_TOKEN]):
                        return expired
                    if old is not None and not is_live(old, now) and expired is None:
                        expired = old
                        continue
                    raise ItemExists(record["id"], old) from exc
                if any(reason.get("Code") == "ConditionalCheckFailed" for reason in other_reasons):
                    raise CompanionRefused() from exc
                raise
            return expired
        raise ItemExists(record["id"], expired)

    def _update(
        self,
        tenant: str,
        item_id: str,
        expr: Expression,
        sets: list[str],
        removes: list[str],
        precondition: Precondition,
        extra_condition: str = "",
    ) -> dict[str, Any]:
        now = clock.now_text()
        token = _new_write_token()
        sets = [
            *sets,
            f"{expr.name('version')} = {expr.name('version')} + {expr.value(1)}",
            f"{expr.name('updated_at')} = {expr.value(now)}",
            f"{expr.name(WRITE_TOKEN)} = {expr.value(token)}",
        ]
        update = "SET " + ", ".join(sets)
        if removes:
            update += " REMOVE " + ", ".join(removes)
        condition = (
            _live_condition(expr, now)
            + _version_condition(expr, precondition)
            + extra_condition
            + f" AND (attribute_not_exists({expr.name(WRITE_TOKEN)}) OR {expr.name(WRITE_TOKEN)} <> {expr.value(token)})"
        )
        if len(sets) + len(removes) > MAX_UPDATE_ACTIONS or not within_expression_limits(update, condition):
            raise ExpressionTooLarge()
        try:
            response = conditional(
                aws.dynamodb().update_item,
                TableName=self.table,
                Key=self.key(tenant, item_id),
                UpdateExpression=update,
                ConditionExpression=condition,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **expr.kwargs(),
            )
        except ConditionNotMet as failed:
            old = failed.old
            if old is not None and old.get(WRITE_TOKEN) == token:
                return old  # an earlier attempt of this call applied it; its response was lost
            raise ConditionFailed(old if old and is_live(old, now) else None) from failed
        return from_item(response["Attributes"])

    def _field_updates(
        self, tenant: str, item_id: str, expr: Expression, values: dict[str, Any]
    ) -> tuple[list[str], list[str]]:
        """SET/REMOVE clauses for top-level writable fields; ``None`` resets a field."""
        sets: list[str] = []
        removes: list[str] = []
        for field, value in values.items():
            if field == "expires_at":
                if value is None:
                    removes += [expr.name(a) for a in ("expires_at", "ttl", "due_pk", "due_at")]
                else:
                    pk, sk = tenant_pk(tenant), item_sk(item_id)
                    for attr, attr_value in _expiry_attributes(pk, sk, value).items():
                        sets.append(f"{expr.name(attr)} = {expr.value(attr_value)}")
            elif field == "description" and value is None:
                removes.append(expr.name("description"))
            else:
                sets.append(f"{expr.name(field)} = {expr.value(value)}")
        return sets, removes

    def replace(
        self, tenant: str, item_id: str, fields: ItemFields, precondition: Precondition
    ) -> dict[str, Any]:
        """Full replacement of the writable fields (PUT), or the write-back of a merged PATCH."""
        expr = Expression()
        values = {
            "name": fields.name,
            "description": fields.description,
            "tags": fields.tags,
            "data": fields.data,
            "data_size": jsonutil.compact_size(fields.data),
            "expires_at": fields.expires_at,
        }
        sets, removes = self._field_updates(tenant, item_id, expr, values)
        return self._update(tenant, item_id, expr, sets, removes, precondition)

    def patch_in_place(
        self,
        tenant: str,
        item_id: str,
        top_level: dict[str, Any],
        data_sets: dict[str, Any],
        data_removes: list[str],
        data_growth: int,
        data_budget: int,
        precondition: Precondition,
    ) -> dict[str, Any]:
        """Apply a merge patch whose ``data`` part only sets or removes top-level keys.

        Such a patch can be expressed as one ``UpdateItem``, atomic against concurrent writers, as
        long as the expression stays within DynamoDB's limits (else ``ExpressionTooLarge``, and the
        caller merges locally instead).
        ``data_size`` is kept as an upper bound of the compact size of ``data``; the write is
        conditional on the bound staying within ``data_budget``, so ``data`` can never grow past
        the limit. When the condition fails for that reason alone, the caller merges locally
        (exact size) and writes with ``replace``.
        """
        expr = Expression()
        sets, removes = self._field_updates(tenant, item_id, expr, top_level)
        extra = ""
        for key, value in data_sets.items():
            sets.append(f"{expr.name('data', map_key(key))} = {expr.value(value)}")
        for key in data_removes:
            removes.append(expr.name("data", map_key(key)))
        if data_sets or data_removes:
            size = expr.name("data_size")
            sets.append(f"{size} = {size} + {expr.value(data_growth)}")
            extra = f" AND {size} <= {expr.value(data_budget - data_growth)}"
        return self._update(tenant, item_id, expr, sets, removes, precondition, extra)

    def delete(self, tenant: str, item_id: str, precondition: Precondition) -> dict[str, Any]:
        """One ``DeleteItem`` for an item without attachments; otherwise see ``_delete_with_attachments``."""
        now = clock.now_text()
        expr = Expression()
        count = expr.name("attachment_count")
        condition = (
            _live_condition(expr, now)
            + _version_condition(expr, precondition)
            + f" AND (attribute_not_exists({count}) OR {count} <= {expr.value(0)})"
        )
        try:
            response = conditional(
                aws.dynamodb().delete_item,
                TableName=self.table,
                Key=self.key(tenant, item_id),
                ConditionExpression=condition,
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **expr.kwargs(),
            )
        except ConditionNotMet as failed:
            current = failed.old if failed.old and is_live(failed.old, now) else None
            if current is not None and int(current.get("attachment_count", 0)) > 0:
                return self._delete_with_attachments(tenant, current, precondition)
            raise ConditionFailed(current) from failed
        return from_item(response["Attributes"])

    def _delete_with_attachments(
        self, tenant: str, current: dict[str, Any], precondition: Precondition
    ) -> dict[str, Any]:
        """Delete the item and leave a tombstone for its attachments, atomically.

        The attachments vanish from the API with the item (they belong to its ``created_at``);
        the tombstone is due at once in ``due-index``, so the next cleanup run removes their
        records and stored files.
        """
        now = clock.now_text()
        expr = Expression()
        condition = (
            _live_condition(expr, now)
            + _version_condition(expr, precondition)
            + f" AND {expr.name('created_at')} = {expr.value(current['created_at'])}"
        )
        tombstone = self.tombstone(tenant, str(current["id"]), str(current["created_at"]))
        try:
            dynamo_batch.transact(
                [
                    {
                        "Delete": {
                            "TableName": self.table,
                            "Key": self.key(tenant, str(current["id"])),
                            "ConditionExpression": condition,
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                            **expr.kwargs(),
                        }
                    },
                    {"Put": {"TableName": self.table, "Item": to_item(tombstone)}},
                ]
            )
        except ClientError as exc:
            reasons = cancellation_reasons(exc)
            if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                old = reasons[0].get("Item")
                record = from_item(old) if old else None
                raise ConditionFailed(record if record and is_live(record, now) else None) from exc
            raise
        return current

    def delete_if_expired(self, tenant: str, item_id: str, now: str) -> tuple[bool, dict[str, Any] | None]:
        """Delete an item expired at ``now`` that has no attachments (the cleanup job).

        Returns whether it was deleted and, if not, the record as it was (None when gone).
        """
        expr = Expression()
        count = expr.name("attachment_count")
        condition = (
            f"{expr.name('expires_at')} <= {expr.value(now)}"
            f" AND (attribute_not_exists({count}) OR {count} <= {expr.value(0)})"
        )
        try:
            conditional(
                aws.dynamodb().delete_item,
                TableName=self.table,
                Key=self.key(tenant, item_id),
                ConditionExpression=condition,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **expr.kwargs(),
            )
        except ConditionNotMet as failed:
            return False, failed.old
        return True, None

    def delete_expired_incarnation(self, tenant: str, item_id: str, created_at: str, now: str) -> bool:
        """Delete the expired item created at ``created_at``, attachments or not; False if it is not there."""
        expr = Expression()
        return applied(
            aws.dynamodb().delete_item,
            TableName=self.table,
            Key=self.key(tenant, item_id),
            ConditionExpression=(
                f"{expr.name('expires_at')} <= {expr.value(now)} AND {expr.name('created_at')} = {expr.value(created_at)}"
            ),
            **expr.kwargs(),
        )

    def tombstone_at(self, tenant: str, sort_key: str) -> dict[str, Any] | None:
        response = aws.dynamodb().get_item(
            TableName=self.table, Key=layout.key(tenant_pk(tenant), sort_key), ConsistentRead=True
        )
        item = response.get("Item")
        return from_item(item) if item else None

    def clear_tombstone(self, tenant: str, sort_key: str) -> None:
        aws.dynamodb().delete_item(TableName=self.table, Key=layout.key(tenant_pk(tenant), sort_key))

    def list_page(
        self, tenant: str, limit: int, after_id: str | None, descending: bool
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One ``Query`` on the tenant's partition; returns live items and the id to resume after.

        Reads ``limit + 1`` keys so that a full final page is recognised as final without a
        trailing empty page. Expired items are filtered out after the read, so a page may hold
        fewer than ``limit`` items while more follow.
        """
        now = clock.now_text()
        expr = Expression()
        key_condition = f"pk = {expr.value(tenant_pk(tenant))} AND begins_with(sk, {expr.value(ITEM_PREFIX)})"
        kwargs: dict[str, Any] = {}
        if after_id is not None:
            kwargs["ExclusiveStartKey"] = self.key(tenant, after_id)
        response = aws.dynamodb().query(
            TableName=self.table,
            KeyConditionExpression=key_condition,
            FilterExpression=(
                f"attribute_not_exists({expr.name('expires_at')}) OR {expr.name('expires_at')} > {expr.value(now)}"
            ),
            Limit=limit + 1,
            ScanIndexForward=not descending,
            **expr.kwargs(),
            **kwargs,
        )
        records = [from_item(item) for item in response.get("Items", [])]
        last_key = response.get("LastEvaluatedKey")
        if len(records) > limit:
            records = records[:limit]
            return records, records[-1]["id"]
        if last_key:
            return records, str(last_key["sk"]["S"])[len(ITEM_PREFIX):]
        return records, None

