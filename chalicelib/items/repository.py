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

import dataclasses
import re
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.items.records import (
    Completion,
    ConditionFailed,
    ExpressionTooLarge,
    Finding,
    InPlacePatch,
    ItemExists,
    ItemFields,
    ItemPage,
    ItemRecord,
    Tombstone,
    to_api,
)
from chalicelib.store import aws, layout
from chalicelib.store import transactions as dynamo_batch
from chalicelib.store.codec import Expression, from_item, map_key, to_item
from chalicelib.store.layout import ITEM_PREFIX, Key, due_pk, item_sk, tenant_pk
from chalicelib.store.writes import (
    CompanionRefused,
    ConditionNotMet,
    Precondition,
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
# A DynamoDB request or transaction entry, as botocore takes it.
Request = dict[str, object]


# DynamoDB's limits on one expression (Developer Guide, "Constraints in Amazon DynamoDB",
# "Expression parameters"): "The maximum length of any expression string is 4 KB" and "The maximum
# number of operators or functions allowed in an UpdateExpression is 300".
MAX_EXPRESSION_BYTES = 4096
MAX_EXPRESSION_OPERATORS = 300
# Our own, lower bound on the actions (SET/REMOVE clauses) of one update: well inside both limits
# above for ordinary keys, and within what the local emulator's recursive expression parser can
# take (it fails near 150 clauses), so local and deployed stacks take the same path.
MAX_UPDATE_ACTIONS = 100
# A replacement that changes tags is conditional on the version whose tags it read; a concurrent
# write sends it round again, each time with the newer item the failed condition returned.
REPLACE_ATTEMPTS = 8
# Counted generously: comparators, arithmetic, logical keywords, functions, and the "=" of every
# SET action. Placeholders (#n1, :v1) hold none of these characters.
_OPERATOR = re.compile(r"<>|<=|>=|=|<|>|\+|-|\b(?:AND|OR|NOT|IN|BETWEEN)\b|\b[a-z_]+\(")


def within_expression_limits(*expressions: str) -> bool:
    return all(
        len(text.encode("utf-8")) <= MAX_EXPRESSION_BYTES and len(_OPERATOR.findall(text)) <= MAX_EXPRESSION_OPERATORS
        for text in expressions
    )


def _new_write_token() -> str:
    return secrets.token_urlsafe(12)


def _written_by(record: ItemRecord | None, token: str) -> bool:
    """Whether ``record`` is the result of the write that carried ``token``."""
    return record is not None and record.write_token == token


def is_live(stored: Mapping[str, object], now_text: str) -> bool:
    """Whether an item as stored (attribute name to value) is alive at ``now_text``."""
    expires_at = stored.get("expires_at")
    return expires_at is None or str(expires_at) > now_text


def _int(value: object) -> int:
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return int(value)
    raise TypeError(f"not a stored number: {value!r}")


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def record_of(stored: Mapping[str, object]) -> ItemRecord:
    """An item as stored (attribute name to value, as ``from_item`` gives it) as a record."""
    tags = stored.get("tags") or []
    data = stored.get("data") or {}
    if not isinstance(tags, list) or not isinstance(data, dict):
        raise TypeError("not a stored item")
    return ItemRecord(
        id=str(stored["id"]),
        name=str(stored["name"]),
        description=_text(stored.get("description")),
        tags=tuple(str(tag) for tag in tags),
        data=data,
        expires_at=_text(stored.get("expires_at")),
        version=_int(stored["version"]),
        created_at=str(stored["created_at"]),
        updated_at=str(stored["updated_at"]),
        attachment_count=_int(stored.get("attachment_count", 0)),
        write_token=_text(stored.get(WRITE_TOKEN)),
        import_ref=_text(stored.get("import_ref")),
        data_size=_int(stored.get("data_size", 0)),
    )


def _record_or_none(item: Mapping[str, object] | None) -> ItemRecord | None:
    """A wire item (``{"S": ...}`` values) as a record; None for none."""
    return record_of(from_item(dict(item))) if item else None


def _expiry_attributes(pk: str, sk: str, expires_at: datetime) -> dict[str, str | int]:
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


def _version_ok(record: ItemRecord, precondition: Precondition) -> bool:
    return precondition is None or precondition == "*" or record.version in precondition


class _Moved(Exception):
    """The item changed since it was read (its version moved on): read ``current`` and retry."""

    def __init__(self, current: ItemRecord) -> None:
        super().__init__("the item moved on")
        self.current = current


class _ExpiredWithTags(Exception):
    """An expired item with tags holds the id: replacing it takes its index records too."""

    def __init__(self, old: ItemRecord) -> None:
        super().__init__("an expired item with tags holds the id")
        self.old = old


def _no_tags_condition(expr: Expression) -> str:
    tags = expr.name("tags")
    return f" AND (attribute_not_exists({tags}) OR size({tags}) = {expr.value(0)})"


def _old_record(old: Mapping[str, object] | None) -> ItemRecord | None:
    """The item a failed condition returned (already decoded), as a record; None for none."""
    return record_of(old) if old else None


class ItemRepository:
    """The items of the table (an ``ItemStore``)."""

    def __init__(self, table_name: str) -> None:
        self.table = table_name

    @staticmethod
    def key(tenant: str, item_id: str) -> Key:
        return layout.item_key(tenant, item_id)

    def get(self, tenant: str, item_id: str) -> ItemRecord | None:
        response = aws.dynamodb().get_item(TableName=self.table, Key=self.key(tenant, item_id))
        record = _record_or_none(response.get("Item"))
        return record if record is not None and record.is_live(clock.now_text()) else None

    @staticmethod
    def new_record(tenant: str, item_id: str, fields: ItemFields, now: str, import_ref: str | None = None) -> Request:
        """The stored form of a new item (version 1); ``import_ref`` marks a row written by an import."""
        pk, sk = tenant_pk(tenant), item_sk(item_id)
        record: Request = {
            "pk": pk,
            "sk": sk,
            "id": item_id,
            "name": fields.name,
            "tags": list(fields.tags),
            "data": fields.data,
            "data_size": jsonutil.compact_size(fields.data),
            "version": 1,
            "created_at": now,
            "updated_at": now,
            WRITE_TOKEN: _new_write_token(),
            layout.NAME_KEY: layout.name_key(fields.name, item_id),
            layout.UPDATED_KEY: layout.updated_key(now, item_id),
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

    def create_actions(
        self, tenant: str, item_id: str, fields: ItemFields, now: str, import_ref: str, replacing: ItemRecord | None = None
    ) -> list[Request]:
        """The create as ``TransactWriteItems`` actions: the item's ``Put`` first, then its tags' index
        records, and the removal of the index records of ``replacing`` (the expired item that holds
        the id, if any) that the new item does not carry (bulk imports write rows this way)."""
        expr = Expression()
        condition = self.free_id_condition(expr, now)
        record = self.new_record(tenant, item_id, fields, now, import_ref)
        put: Request = {
            "Put": {"TableName": self.table, "Item": to_item(record), "ConditionExpression": condition, **expr.kwargs()}
        }
        old_tags = replacing.tags if replacing is not None else ()
        return [put, *self.tag_changes(tenant, item_id, old_tags, fields.tags)]

    def tag_changes(self, tenant: str, item_id: str, old: tuple[str, ...], new: tuple[str, ...]) -> list[Request]:
        """The index-record writes that take an item from tags ``old`` to tags ``new``."""
        changes: list[Request] = [
            {"Put": {"TableName": self.table, "Item": layout.tag_key(tenant, tag, item_id)}} for tag in new if tag not in old
        ]
        changes += [
            {"Delete": {"TableName": self.table, "Key": layout.tag_key(tenant, tag, item_id)}} for tag in old if tag not in new
        ]
        return changes

    def create(
        self, tenant: str, item_id: str, fields: ItemFields, completion: Completion | None = None
    ) -> ItemRecord:
        """Create the item; ``completion`` may return a transaction entry to write atomically with it
        (an idempotency record)."""
        now = clock.now_text()
        stored = self.new_record(tenant, item_id, fields, now)
        record = record_of(stored)
        also = completion(to_api(record)) if completion is not None else None
        if also is None and not fields.tags:
            try:
                replaced = self._put_new(stored, record, now)
            except _ExpiredWithTags as found:
                replaced = self._create_in_transaction(tenant, stored, record, None, now, found.old)
        else:
            replaced = self._create_in_transaction(tenant, stored, record, also, now)
        if replaced:
            # An expired item held this id; its attachments are not the new item's.
            self.bury_attachments_of(tenant, replaced)
        return record

    @staticmethod
    def tombstone(tenant: str, item_id: str, item_created_at: str) -> Request:
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

    def bury_attachments_of(self, tenant: str, old_item: ItemRecord) -> None:
        """After an expired item was replaced: leave a tombstone if it had attachments."""
        if old_item.attachment_count > 0:
            record = self.tombstone(tenant, old_item.id, old_item.created_at)
            aws.dynamodb().put_item(TableName=self.table, Item=to_item(record))

    def _put_new(self, stored: Request, record: ItemRecord, now: str) -> ItemRecord | None:
        """One conditional ``PutItem`` of an item without tags; returns the expired item it replaced,
        if any. An expired item with tags is not replaced here (``_ExpiredWithTags``): its index
        records must go in the same write."""
        expr = Expression()
        tags = expr.name("tags")
        condition = f"({self.free_id_condition(expr, now)}) AND (attribute_not_exists({tags}) OR size({tags}) = {expr.value(0)})"
        try:
            response = conditional(
                aws.dynamodb().put_item,
                TableName=self.table,
                Item=to_item(stored),
                ConditionExpression=condition,
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **expr.kwargs(),
            )
        except ConditionNotMet as failed:
            old = _old_record(failed.old)
            if _written_by(old, str(record.write_token)):
                return None  # an earlier attempt of this call wrote it; its response was lost
            if old is not None and not old.is_live(now):
                raise _ExpiredWithTags(old) from failed
            raise ItemExists(record.id, old) from failed
        return _record_or_none(response.get("Attributes"))

    def _create_in_transaction(
        self,
        tenant: str,
        stored: Request,
        record: ItemRecord,
        also: Mapping[str, object] | None,
        now: str,
        expired: ItemRecord | None = None,
    ) -> ItemRecord | None:
        """The item's ``Put``, its tags' index records and ``also``, all or nothing; returns the
        expired item replaced, if any (whose index records the new item does not carry go with it).

        botocore gives the call one ``ClientRequestToken`` for all its attempts, so DynamoDB applies
        a retried transaction once; the write token covers emulators that ignore that token. A
        transaction cannot return the item it replaced, so the id is claimed only if free, and when an
        expired item holds it (known from the failed condition) a second transaction replaces
        exactly that item.
        """
        for _attempt in range(3):
            expr = Expression()
            if expired is None:
                condition = "attribute_not_exists(pk)"
            else:
                condition = (
                    f"{expr.name('created_at')} = {expr.value(expired.created_at)}"
                    f" AND {expr.name('expires_at')} <= {expr.value(now)}"
                )
            put = {
                "TableName": self.table,
                "Item": to_item(stored),
                "ConditionExpression": condition,
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                **expr.kwargs(),
            }
            old_tags = expired.tags if expired is not None else ()
            entries: Any = [{"Put": put}, *self.tag_changes(tenant, record.id, old_tags, record.tags)]
            if also is not None:
                entries.append(also)
            try:
                aws.dynamodb().transact_write_items(TransactItems=entries)
            except ClientError as exc:
                reasons = cancellation_reasons(exc)
                if not reasons:
                    raise
                item_reason, *other_reasons = reasons
                if item_reason.get("Code") == "ConditionalCheckFailed":
                    old = _record_or_none(item_reason.get("Item"))
                    if _written_by(old, str(record.write_token)):
                        return expired
                    if old is not None and not old.is_live(now) and (expired is None or old.created_at != expired.created_at):
                        expired = old
                        continue
                    raise ItemExists(record.id, old) from exc
                if any(reason.get("Code") == "ConditionalCheckFailed" for reason in other_reasons):
                    raise CompanionRefused() from exc
                raise
            return expired
        raise ItemExists(record.id, expired)

    def _update_request(
        self,
        tenant: str,
        item_id: str,
        expr: Expression,
        sets: list[str],
        removes: list[str],
        condition: str,
        token: str,
        now: str,
    ) -> Request:
        """An ``UpdateItem`` request (or transaction entry) that also counts the version, stamps
        ``updated_at`` (and its index key) and the write token, if the item is live and ``condition``
        holds."""
        sets = [
            *sets,
            f"{expr.name('version')} = {expr.name('version')} + {expr.value(1)}",
            f"{expr.name('updated_at')} = {expr.value(now)}",
            f"{expr.name(layout.UPDATED_KEY)} = {expr.value(layout.updated_key(now, item_id))}",
            f"{expr.name(WRITE_TOKEN)} = {expr.value(token)}",
        ]
        update = "SET " + ", ".join(sets)
        if removes:
            update += " REMOVE " + ", ".join(removes)
        condition = (
            _live_condition(expr, now)
            + condition
            + f" AND (attribute_not_exists({expr.name(WRITE_TOKEN)}) OR {expr.name(WRITE_TOKEN)} <> {expr.value(token)})"
        )
        if len(sets) + len(removes) > MAX_UPDATE_ACTIONS or not within_expression_limits(update, condition):
            raise ExpressionTooLarge()
        return {
            "TableName": self.table,
            "Key": self.key(tenant, item_id),
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            **expr.kwargs(),
        }

    def _update(
        self,
        tenant: str,
        item_id: str,
        expr: Expression,
        sets: list[str],
        removes: list[str],
        precondition: Precondition,
        extra_condition: str = "",
    ) -> ItemRecord:
        now = clock.now_text()
        token = _new_write_token()
        condition = _version_condition(expr, precondition) + extra_condition
        request = self._update_request(tenant, item_id, expr, sets, removes, condition, token, now)
        try:
            response = conditional(aws.dynamodb().update_item, ReturnValues="ALL_NEW", **request)
        except ConditionNotMet as failed:
            old = _old_record(failed.old)
            if old is not None and old.write_token == token:
                return old  # an earlier attempt of this call applied it; its response was lost
            raise ConditionFailed(old if old is not None and old.is_live(now) else None) from failed
        return record_of(from_item(response["Attributes"]))

    def _field_updates(
        self, tenant: str, item_id: str, expr: Expression, values: Mapping[str, object]
    ) -> tuple[list[str], list[str]]:
        """SET/REMOVE clauses for top-level writable fields; ``None`` resets a field."""
        sets: list[str] = []
        removes: list[str] = []
        for field, value in values.items():
            if field == "expires_at":
                if value is None:
                    removes += [expr.name(a) for a in ("expires_at", "ttl", "due_pk", "due_at")]
                elif isinstance(value, datetime):
                    pk, sk = tenant_pk(tenant), item_sk(item_id)
                    for attr, attr_value in _expiry_attributes(pk, sk, value).items():
                        sets.append(f"{expr.name(attr)} = {expr.value(attr_value)}")
                else:
                    raise TypeError("expires_at must be a datetime or None")
            elif field == "description" and value is None:
                removes.append(expr.name("description"))
            elif field == "name":
                sets.append(f"{expr.name('name')} = {expr.value(value)}")
                sets.append(f"{expr.name(layout.NAME_KEY)} = {expr.value(layout.name_key(str(value), item_id))}")
            else:
                sets.append(f"{expr.name(field)} = {expr.value(list(value) if isinstance(value, tuple) else value)}")
        return sets, removes

    def replace(
        self, tenant: str, item_id: str, fields: ItemFields, precondition: Precondition, current: ItemRecord | None = None
    ) -> ItemRecord:
        """Full replacement of the writable fields (PUT), or the write-back of a merged PATCH.

        Tags unchanged (the usual case): one ``UpdateItem``, conditional on the stored tags being
        the new ones. Tags changed: one transaction of the update, conditional on the version whose
        tags were seen, and the index records added and removed. When the tags are not known
        (no ``current``), the first attempt finds them out: its failed condition returns the item.
        """
        known = current
        for _attempt in range(REPLACE_ATTEMPTS):
            if known is None or known.tags == fields.tags:
                expr = Expression()
                sets, removes = self._replacement(tenant, item_id, expr, fields)
                same_tags = f" AND {expr.name('tags')} = {expr.value(list(fields.tags))}"
                try:
                    return self._update(tenant, item_id, expr, sets, removes, precondition, same_tags)
                except ConditionFailed as failed:
                    old = failed.current
                    if old is None or not _version_ok(old, precondition) or old.tags == fields.tags:
                        raise
                    known = old
                    continue
            try:
                return self._replace_tags(tenant, item_id, fields, precondition, known)
            except _Moved as moved:
                known = moved.current
        raise ConditionFailed(known)

    def _replacement(self, tenant: str, item_id: str, expr: Expression, fields: ItemFields) -> tuple[list[str], list[str]]:
        values = {
            "name": fields.name,
            "description": fields.description,
            "tags": list(fields.tags),
            "data": fields.data,
            "data_size": jsonutil.compact_size(fields.data),
            "expires_at": fields.expires_at,
        }
        return self._field_updates(tenant, item_id, expr, values)

    def _replace_tags(
        self, tenant: str, item_id: str, fields: ItemFields, precondition: Precondition, known: ItemRecord
    ) -> ItemRecord:
        """The replacement and its tags' index records in one transaction, if the item is still at
        ``known``'s version; ``_Moved`` when another write came first."""
        now = clock.now_text()
        token = _new_write_token()
        expr = Expression()
        sets, removes = self._replacement(tenant, item_id, expr, fields)
        condition = _version_condition(expr, precondition) + f" AND {expr.name('version')} = {expr.value(known.version)}"
        update = self._update_request(tenant, item_id, expr, sets, removes, condition, token, now)
        try:
            dynamo_batch.transact([{"Update": update}, *self.tag_changes(tenant, item_id, known.tags, fields.tags)])
        except ClientError as exc:
            reasons = cancellation_reasons(exc)
            if not reasons or reasons[0].get("Code") != "ConditionalCheckFailed":
                raise
            old = _record_or_none(reasons[0].get("Item"))
            if old is not None and old.write_token == token:
                return old  # an earlier attempt of this call applied it; its response was lost
            if old is None or not old.is_live(now):
                raise ConditionFailed(None) from exc
            if not _version_ok(old, precondition):
                raise ConditionFailed(old) from exc
            raise _Moved(old) from exc
        expires_at = fields.expires_at
        return dataclasses.replace(
            known,
            name=fields.name,
            description=fields.description,
            tags=fields.tags,
            data=fields.data,
            data_size=jsonutil.compact_size(fields.data),
            expires_at=None if expires_at is None else clock.format_timestamp(expires_at),
            version=known.version + 1,
            updated_at=now,
            write_token=token,
        )

    def patch_in_place(self, tenant: str, item_id: str, patch: InPlacePatch, precondition: Precondition) -> ItemRecord:
        """Apply a merge patch whose ``data`` part only sets or removes top-level keys.

        Such a patch can be expressed as one ``UpdateItem``, atomic against concurrent writers, as
        long as the expression stays within DynamoDB's limits (else ``ExpressionTooLarge``, and the
        caller merges locally instead).
        ``data_size`` is kept as an upper bound of the compact size of ``data``; the write is
        conditional on the bound staying within ``data_budget``, so ``data`` can never grow past
        the limit. When the condition fails for that reason alone, the caller merges locally
        (exact size) and writes with ``replace``.
        """
        if "tags" in patch.top_level:
            raise ValueError("tags are replaced, not patched in place: their index records depend on the stored tags")
        expr = Expression()
        sets, removes = self._field_updates(tenant, item_id, expr, patch.top_level)
        extra = ""
        for key, value in patch.data_sets.items():
            sets.append(f"{expr.name('data', map_key(key))} = {expr.value(value)}")
        for key in patch.data_removes:
            removes.append(expr.name("data", map_key(key)))
        if patch.data_sets or patch.data_removes:
            size = expr.name("data_size")
            sets.append(f"{size} = {size} + {expr.value(patch.data_growth)}")
            extra = f" AND {size} <= {expr.value(patch.data_budget - patch.data_growth)}"
        return self._update(tenant, item_id, expr, sets, removes, precondition, extra)

    def delete(self, tenant: str, item_id: str, precondition: Precondition) -> ItemRecord:
        """One ``DeleteItem`` for an item without attachments or tags; otherwise see
        ``_delete_with_companions``."""
        now = clock.now_text()
        expr = Expression()
        count = expr.name("attachment_count")
        condition = (
            _live_condition(expr, now)
            + _version_condition(expr, precondition)
            + f" AND (attribute_not_exists({count}) OR {count} <= {expr.value(0)})"
            + _no_tags_condition(expr)
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
            old = _old_record(failed.old)
            current = old if old is not None and old.is_live(now) else None
            if current is not None and (current.attachment_count > 0 or current.tags):
                return self._delete_with_companions(tenant, current, precondition)
            raise ConditionFailed(current) from failed
        return record_of(from_item(response["Attributes"]))

    def _delete_with_companions(self, tenant: str, current: ItemRecord, precondition: Precondition) -> ItemRecord:
        """Delete the item with its tags' index records and, if it has attachments, leave a
        tombstone for them, atomically.

        The attachments vanish from the API with the item (they belong to its ``created_at``);
        the tombstone is due at once in ``due-index``, so the next cleanup run removes their
        records and stored files. The write is conditional on the version read (whose tags it
        removes); when another write came first, it goes again from the item that write left.
        """
        for _attempt in range(REPLACE_ATTEMPTS):
            now = clock.now_text()
            expr = Expression()
            condition = (
                _live_condition(expr, now)
                + _version_condition(expr, precondition)
                + f" AND {expr.name('created_at')} = {expr.value(current.created_at)}"
                + f" AND {expr.name('version')} = {expr.value(current.version)}"
            )
            companions = self.tag_changes(tenant, current.id, current.tags, ())
            if current.attachment_count > 0:
                tombstone = self.tombstone(tenant, current.id, current.created_at)
                companions.append({"Put": {"TableName": self.table, "Item": to_item(tombstone)}})
            else:
                count = expr.name("attachment_count")
                condition += f" AND (attribute_not_exists({count}) OR {count} <= {expr.value(0)})"
            delete = {
                "TableName": self.table,
                "Key": self.key(tenant, current.id),
                "ConditionExpression": condition,
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                **expr.kwargs(),
            }
            try:
                dynamo_batch.transact([{"Delete": delete}, *companions])
            except ClientError as exc:
                reasons = cancellation_reasons(exc)
                if not reasons or reasons[0].get("Code") != "ConditionalCheckFailed":
                    raise
                old = _record_or_none(reasons[0].get("Item"))
                if old is None or not old.is_live(now) or not _version_ok(old, precondition):
                    raise ConditionFailed(old if old is not None and old.is_live(now) else None) from exc
                current = old
                continue
            return current
        raise ConditionFailed(current)

    def delete_if_expired(self, tenant: str, item_id: str, now: str) -> tuple[bool, ItemRecord | None]:
        """Delete an item expired at ``now`` that has no attachments, with its tags' index records
        (the cleanup job).

        Returns whether it was deleted and, if not, the record as it was (None when gone).
        """
        expr = Expression()
        count = expr.name("attachment_count")
        condition = (
            f"{expr.name('expires_at')} <= {expr.value(now)}"
            f" AND (attribute_not_exists({count}) OR {count} <= {expr.value(0)})"
            + _no_tags_condition(expr)
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
            old = _old_record(failed.old)
            if old is not None and not old.is_live(now) and old.attachment_count <= 0 and old.tags:
                return self.delete_expired_incarnation(tenant, old, now), None
            return False, old
        return True, None

    def delete_expired_incarnation(self, tenant: str, old: ItemRecord, now: str) -> bool:
        """Delete the expired item ``old`` (that incarnation, at that version), attachments or not,
        with its tags' index records; False if it is not there."""
        expr = Expression()
        condition = (
            f"{expr.name('expires_at')} <= {expr.value(now)} AND {expr.name('created_at')} = {expr.value(old.created_at)}"
            f" AND {expr.name('version')} = {expr.value(old.version)}"
        )
        delete = {"TableName": self.table, "Key": self.key(tenant, old.id), "ConditionExpression": condition, **expr.kwargs()}
        try:
            dynamo_batch.transact_with([{"Delete": delete}, *self.tag_changes(tenant, old.id, old.tags, ())])
        except dynamo_batch.ConditionsFailed:
            return False
        return True

    def tombstone_at(self, tenant: str, sort_key: str) -> Tombstone | None:
        response = aws.dynamodb().get_item(
            TableName=self.table, Key=layout.key(tenant_pk(tenant), sort_key), ConsistentRead=True
        )
        item = response.get("Item")
        if not item:
            return None
        stored = from_item(item)
        return Tombstone(item_id=str(stored["item_id"]), item_created_at=str(stored["item_created_at"]))

    def clear_tombstone(self, tenant: str, sort_key: str) -> None:
        aws.dynamodb().delete_item(TableName=self.table, Key=layout.key(tenant_pk(tenant), sort_key))

    def list_page(self, tenant: str, limit: int, after_id: str | None, descending: bool) -> ItemPage:
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
        records = [record_of(from_item(item)) for item in response.get("Items", [])]
        last_key = response.get("LastEvaluatedKey")
        if len(records) > limit:
            records = records[:limit]
            return ItemPage(tuple(records), records[-1].id)
        if last_key:
            return ItemPage(tuple(records), str(last_key["sk"]["S"])[len(ITEM_PREFIX):])
        return ItemPage(tuple(records), None)

    def find_page(self, tenant: str, finding: Finding, limit: int, after: str | None, descending: bool) -> ItemPage:
        """One page of ``GET /items`` finding (API.md "Finding items"): a ``Query`` on the index of
        the finding; a page of a tag also reads its items with one ``BatchGetItem``."""
        if finding.by == "tag":
            return self._tag_page(tenant, str(finding.value), limit, after, descending)
        if finding.by == "name":
            return self._index_page(tenant, layout.NAME_INDEX, layout.NAME_KEY, None, limit, after, descending)
        if finding.by == "prefix":
            return self._index_page(tenant, layout.NAME_INDEX, layout.NAME_KEY, str(finding.value), limit, after, descending)
        if finding.by == "updated_at":
            return self._index_page(tenant, layout.UPDATED_INDEX, layout.UPDATED_KEY, None, limit, after, descending)
        return self.list_page(tenant, limit, after, descending)

    def _index_page(
        self,
        tenant: str,
        index: str,
        attribute: str,
        prefix: str | None,
        limit: int,
        after: str | None,
        descending: bool,
    ) -> ItemPage:
        """A page of ``name-index`` or ``updated-index`` (projecting whole items): one ``Query``.

        ``prefix`` (a name prefix) narrows the query to keys starting with its case folding; the
        names themselves are then compared too, for names longer than their key holds.
        """
        now = clock.now_text()
        expr = Expression()
        key_condition = f"{expr.name('pk')} = {expr.value(tenant_pk(tenant))}"
        if prefix is not None:
            key_condition += f" AND begins_with({expr.name(attribute)}, {expr.value(layout.folded(prefix))})"
        kwargs: dict[str, Any] = {}
        if after is not None:
            kwargs["ExclusiveStartKey"] = layout.index_start_key(tenant, attribute, after)
        response = aws.dynamodb().query(
            TableName=self.table,
            IndexName=index,
            KeyConditionExpression=key_condition,
            FilterExpression=(
                f"attribute_not_exists({expr.name('expires_at')}) OR {expr.name('expires_at')} > {expr.value(now)}"
            ),
            Limit=limit + 1,
            ScanIndexForward=not descending,
            **expr.kwargs(),
            **kwargs,
        )
        stored = [from_item(item) for item in response.get("Items", [])]
        folded = None if prefix is None else prefix.casefold()
        keep = [
            record_of(item) for item in stored[:limit] if folded is None or str(item["name"]).casefold().startswith(folded)
        ]
        if len(stored) > limit:
            return ItemPage(tuple(keep), str(stored[limit - 1][attribute]))
        last_key = response.get("LastEvaluatedKey")
        return ItemPage(tuple(keep), str(last_key[attribute]["S"]) if last_key else None)

    def _tag_page(self, tenant: str, tag: str, limit: int, after: str | None, descending: bool) -> ItemPage:
        """A page of one tag's index records (one ``Query``), then their items (one ``BatchGetItem``)."""
        expr = Expression()
        kwargs: dict[str, Any] = {}
        if after is not None:
            kwargs["ExclusiveStartKey"] = layout.tag_key(tenant, tag, after)
        response = aws.dynamodb().query(
            TableName=self.table,
            KeyConditionExpression=f"{expr.name('pk')} = {expr.value(layout.tag_pk(tenant, tag))}",
            Limit=limit + 1,
            ScanIndexForward=not descending,
            **expr.kwargs(),
            **kwargs,
        )
        ids = [str(item["sk"]["S"])[len(ITEM_PREFIX):] for item in response.get("Items", [])]
        last_key = response.get("LastEvaluatedKey")
        resume = ids[limit - 1] if len(ids) > limit else (str(last_key["sk"]["S"])[len(ITEM_PREFIX):] if last_key else None)
        ids = ids[:limit]
        found = dynamo_batch.get(self.table, [self.key(tenant, item_id) for item_id in ids]) if ids else []
        now = clock.now_text()
        records = {record.id: record for record in (record_of(from_item(item)) for item in found)}
        page = [records[i] for i in ids if i in records and records[i].is_live(now) and tag in records[i].tags]
        return ItemPage(tuple(page), resume)
