"""Every read and write of imports in the table: the records, their row errors, chunk markers.

Keys come from ``store.layout``; records leave as ``ImportRecord``. Conditional writes answer
whether they were applied (``store.writes.applied``), never with a DynamoDB error.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from chalicelib.attachments.models import MAX_LISTED_ROW_ERRORS
from chalicelib.files.uploads import window_end
from chalicelib.imports.records import ImportRecord, RowError
from chalicelib.store import aws, layout
from chalicelib.store import transactions as dynamo_batch
from chalicelib.store.codec import Expression, from_item, record_of, stored_fields, to_attr, to_item
from chalicelib.store.layout import due_pk, import_key, import_sk, tenant_pk
from chalicelib.store.transactions import ConditionsFailed
from chalicelib.store.writes import applied
from chalicelib.util import clock, metrics

# Row-error and chunk records outlive any redelivery (the queue keeps messages 4 days, the
# dead-letter queue 14); DynamoDB's TTL removes them afterwards at no cost.
WORK_RECORD_TTL = timedelta(days=30)


def work_record_ttl() -> int:
    return clock.epoch_seconds(clock.now() + WORK_RECORD_TTL)


def to_record(stored: Mapping[str, object]) -> ImportRecord:
    errors = stored.get("errors")
    listed = errors if isinstance(errors, list) else []
    return record_of(ImportRecord, stored, errors=tuple(_row_error(e) for e in listed if isinstance(e, Mapping)))


def _row_error(stored: Mapping[str, object]) -> RowError:
    line = stored.get("line")
    return RowError(int(str(line)) if line is not None else None, str(stored["detail"]))


def get(table: str, tenant: str, import_id: str) -> ImportRecord | None:
    response = aws.dynamodb().get_item(TableName=table, Key=import_key(tenant, import_id), ConsistentRead=True)
    return to_record(from_item(response["Item"])) if response.get("Item") else None


def create(table: str, tenant: str, record: ImportRecord, window_seconds: int, also: dict[str, object] | None = None) -> None:
    """Write a new import (due when its upload window closes) and ``also``, a companion entry, with it.

    The id is fresh: a failed condition means an earlier attempt of this very call (its answer
    lost, then retried by the client library) wrote it, with the rest.
    """
    pk, sk = tenant_pk(tenant), import_sk(record.id)
    # Due in the cleanup job's index when the upload window closes.
    closes = clock.format_timestamp(window_end(record.created_at, window_seconds))
    stored = {"pk": pk, "sk": sk, **stored_fields(record), **layout.due(pk, sk, closes)}
    put = {"TableName": table, "Item": to_item(stored), "ConditionExpression": "attribute_not_exists(pk)"}
    dynamo_batch.create_fresh([{"Put": put}], also)


def list_page(
    table: str, tenant: str, limit: int, ascending: bool, after: str | None
) -> tuple[list[ImportRecord], str | None]:
    """Up to ``limit`` imports after the id ``after``; and the id to continue after, if any."""
    kwargs: dict[str, Any] = {}
    if after is not None:
        kwargs["ExclusiveStartKey"] = import_key(tenant, after)
    response = aws.dynamodb().query(
        TableName=table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues={":pk": to_attr(tenant_pk(tenant)), ":prefix": to_attr(layout.IMPORT_PREFIX)},
        Limit=limit + 1,
        ScanIndexForward=ascending,
        **kwargs,
    )
    records = [to_record(from_item(i)) for i in response.get("Items", [])]
    last_id: str | None = None
    if len(records) > limit:
        records = records[:limit]
        last_id = records[-1].id
    elif response.get("LastEvaluatedKey"):
        last_id = str(response["LastEvaluatedKey"]["sk"]["S"])[len(layout.IMPORT_PREFIX) :]
    return records, last_id


# -- row errors and chunk markers --------------------------------------------------------------
def row_error_item(tenant: str, import_id: str, line: int, detail: str, ttl: int) -> dict[str, object]:
    return {**layout.import_error_key(tenant, import_id, line), **to_item({"line": line, "detail": detail, "ttl": ttl})}


def put_row_errors(table: str, tenant: str, import_id: str, errors: list[tuple[int, str]]) -> None:
    """Store row errors; writing one twice stores the same record, so retries are harmless."""
    ttl = work_record_ttl()
    dynamo_batch.write(
        table, [dynamo_batch.put(row_error_item(tenant, import_id, line, detail, ttl)) for line, detail in errors]
    )


def first_row_errors(table: str, tenant: str, import_id: str) -> list[RowError]:
    response = aws.dynamodb().query(
        TableName=table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues={
            ":pk": to_attr(tenant_pk(tenant)),
            ":prefix": to_attr(layout.import_errors_of(import_id)),
        },
        ConsistentRead=True,
        Limit=MAX_LISTED_ROW_ERRORS,
    )
    return [RowError(int(r["line"]), str(r["detail"])) for r in map(from_item, response.get("Items", []))]


# -- state changes -----------------------------------------------------------------------------
def _update(table: str, tenant: str, import_id: str, expr: Expression, update: str, condition: str) -> bool:
    """One conditional ``UpdateItem`` of the import; whether it was applied."""
    return applied(
        aws.dynamodb().update_item,
        TableName=table,
        Key=import_key(tenant, import_id),
        UpdateExpression=update,
        ConditionExpression=condition,
        **expr.kwargs(),
    )


def _finish(table: str, tenant: str, import_id: str, status: str, errors: list[RowError],
            expr: Expression, condition: str) -> bool:
    now = clock.now_text()
    sets = [
        f"{expr.name('status')} = {expr.value(status)}",
        f"{expr.name('errors')} = {expr.value([{'line': e.line, 'detail': e.detail} for e in errors])}",
        f"{expr.name('completed_at')} = {expr.value(now)}",
        f"{expr.name('updated_at')} = {expr.value(now)}",
        # Due at once: the next cleanup run removes the source file.
        f"{expr.name('due_pk')} = {expr.value(due_pk(tenant_pk(tenant), import_sk(import_id)))}",
        f"{expr.name('due_at')} = {expr.value(now)}",
    ]
    return _update(table, tenant, import_id, expr, "SET " + ", ".join(sets), condition)


def fail(
    table: str, tenant: str, import_id: str, *, detail: str, line: int | None, from_status: tuple[str, ...]
) -> bool:
    """Mark the import failed (from one of ``from_status``); False when it was in another state."""
    expr = Expression()
    condition = f"{expr.name('status')} IN ({', '.join(expr.value(s) for s in from_status)})"
    failed = _finish(table, tenant, import_id, "failed", [RowError(line, detail)], expr, condition)
    if failed:
        metrics.count(metrics.IMPORTS, "ImportsFailed")
    return failed


def try_complete(table: str, tenant: str, import_id: str) -> bool:
    """Complete the import if every row is accounted for; True if this call completed it."""
    record = get(table, tenant, import_id)
    if record is None or record.status != "processing" or record.rows_total is None:
        return False
    if record.rows_done != record.rows_total:
        return False
    errors = first_row_errors(table, tenant, import_id) if record.rows_failed else []
    expr = Expression()
    condition = (
        f"{expr.name('status')} = {expr.value('processing')} AND {expr.name('rows_done')} = {expr.value(record.rows_total)}"
    )
    completed = _finish(table, tenant, import_id, "completed", errors, expr, condition)
    if completed:
        metrics.record(metrics.IMPORTS, {"ImportDuration": max(0.0, clock.seconds_between(record.created_at, clock.now_text()))})
    return completed


def settle(table: str, tenant: str, import_id: str, status: str) -> bool:
    """Take a finished import out of the cleanup job's index; False if its status moved on."""
    expr = Expression()
    update = f"REMOVE {expr.name('due_pk')}, {expr.name('due_at')}"
    return _update(table, tenant, import_id, expr, update, f"{expr.name('status')} = {expr.value(status)}")


def start(table: str, tenant: str, import_id: str, deadline: str) -> bool:
    """``pending_upload`` → ``processing``, due (in ``due-index``) at ``deadline``.

    An import already ``processing`` whose rows are not all queued yet (a run again after a
    crash) goes on too, keeping the deadline of the first run. False for any other state.
    """
    now = clock.now_text()
    expr = Expression()
    status = expr.name("status")
    update = (
        f"SET {status} = {expr.value('processing')}, {expr.name('updated_at')} = {expr.value(now)},"
        f" {expr.name('due_at')} = {expr.value(deadline)}"
    )
    if _update(table, tenant, import_id, expr, update, f"{status} = {expr.value('pending_upload')}"):
        return True
    expr = Expression()
    return _while_processing(table, tenant, import_id, expr, "", f"attribute_not_exists({expr.name('rows_total')})")


def _while_processing(table: str, tenant: str, import_id: str, expr: Expression, sets: str, condition: str,
                      adds: str = "") -> bool:
    """Update a ``processing`` import (``sets``, ``adds``, and ``updated_at``) if ``condition`` holds."""
    update = f"SET {sets}{', ' if sets else ''}{expr.name('updated_at')} = {expr.value(clock.now_text())}"
    if adds:
        update += f" ADD {adds}"
    return _update(
        table, tenant, import_id, expr, update, f"{expr.name('status')} = {expr.value('processing')} AND {condition}"
    )


def save_checkpoint(
    table: str, tenant: str, import_id: str, checkpoint: dict[str, object], after: Mapping[str, object] | None
) -> bool:
    """Write the pipeline's checkpoint, if ``after`` (the one its run began from) is still the latest."""
    expr = Expression()
    parse = expr.name("parse")
    condition = (
        f"attribute_not_exists({parse})" if after is None
        else f"{parse}.{expr.name('offset')} = {expr.value(int(str(after['offset'])))}"
    )
    return _while_processing(table, tenant, import_id, expr, f"{parse} = {expr.value(checkpoint)}", condition)


def set_total(table: str, tenant: str, import_id: str, total: int, failed: int) -> bool:
    """Record ``rows_total`` and count the parser's row errors, once per import."""
    expr = Expression()
    rows_total, count = expr.name("rows_total"), expr.value(failed)
    return _while_processing(
        table, tenant, import_id, expr, f"{rows_total} = {expr.value(total)}", f"attribute_not_exists({rows_total})",
        adds=f"{expr.name('rows_failed')} {count}, {expr.name('rows_done')} {count}",
    )


# -- the queue consumer's chunks -----------------------------------------------------------------
def counters_action(table: str, tenant: str, import_id: str, imported: int, failed: int, now: str) -> dict[str, object]:
    """A transaction entry counting rows on a ``processing`` import."""
    expr = Expression()
    update = (
        f"SET {expr.name('updated_at')} = {expr.value(now)}"
        f" ADD {expr.name('rows_imported')} {expr.value(imported)},"
        f" {expr.name('rows_failed')} {expr.value(failed)},"
        f" {expr.name('rows_done')} {expr.value(imported + failed)}"
    )
    return {"Update": {
        "TableName": table,
        "Key": import_key(tenant, import_id),
        "UpdateExpression": update,
        "ConditionExpression": f"{expr.name('status')} = {expr.value('processing')}",
        **expr.kwargs(),
    }}


def read_chunk(
    table: str, tenant: str, import_id: str, chunk: int, item_keys: list[layout.Key]
) -> tuple[ImportRecord | None, bool, list[dict[str, object] | None]]:
    """One ``BatchGetItem``: the import, whether the chunk's marker exists, and the stored record
    at each of ``item_keys`` (None where there is none)."""
    record_key = import_key(tenant, import_id)
    marker_key = layout.import_chunk_key(tenant, import_id, chunk)
    found = {
        (r["pk"], r["sk"]): r for r in map(from_item, dynamo_batch.get(table, [record_key, marker_key, *item_keys]))
    }

    def at(key: layout.Key) -> dict[str, object] | None:
        return found.get((key["pk"]["S"], key["sk"]["S"]))

    record = at(record_key)
    return (to_record(record) if record is not None else None), at(marker_key) is not None, [at(k) for k in item_keys]


def stored_at(table: str, key: layout.Key) -> dict[str, object] | None:
    """The record at ``key`` (consistent read), as stored."""
    found = dynamo_batch.get(table, [key])
    return from_item(found[0]) if found else None


# A transaction holds at most 100 actions: a chunk's row writes (each row's item and its tags'
# index records, or its error record) at most this many, then its marker and the counters.
MAX_ROW_WRITES = 98

CHUNK_APPLIED = "ignored: chunk already applied"
NOT_PROCESSING = "ignored: the import is no longer processing"


def apply_chunk(
    table: str, tenant: str, import_id: str, chunk: int,
    row_actions: list[list[dict[str, object]]], errors: dict[int, str], now: str,
) -> str | list[int] | None:
    """One transaction: the rows' writes (each row's item and its tags' index records), the row
    errors, the chunk's marker and the counters.

    None when applied; ``CHUNK_APPLIED`` or ``NOT_PROCESSING`` when the chunk is to be ignored;
    else the positions (in ``row_actions``) of the rows whose conditions failed. Other failures
    are raised as they come.
    """
    ttl = work_record_ttl()
    actions = [action for row in row_actions for action in row]
    # The position in ``actions`` of each row's first action (its item's conditional put).
    starts = {sum(len(row) for row in row_actions[:position]): position for position in range(len(row_actions))}
    actions += [
        {"Put": {"TableName": table, "Item": row_error_item(tenant, import_id, line, detail, ttl)}}
        for line, detail in errors.items()
    ]
    marker = {**layout.import_chunk_key(tenant, import_id, chunk), **to_item({"ttl": ttl})}
    actions.append({"Put": {"TableName": table, "Item": marker, "ConditionExpression": "attribute_not_exists(pk)"}})
    actions.append(counters_action(table, tenant, import_id, len(row_actions), len(errors), now))
    try:
        dynamo_batch.transact_with(actions)
    except ConditionsFailed as refused:
        if len(actions) - 2 in refused.failed:
            return CHUNK_APPLIED
        if len(actions) - 1 in refused.failed:
            return NOT_PROCESSING
        taken = [starts[i] for i in refused.failed if i in starts]
        if not taken:
            raise
        return taken
    return None


def apply_row(table: str, tenant: str, import_id: str, actions: list[dict[str, object]], now: str) -> str | None:
    """One row's writes with the import's counters: None when applied, ``NOT_PROCESSING``, or
    ``"taken"`` when the row's own condition failed."""
    try:
        dynamo_batch.transact_with([*actions, counters_action(table, tenant, import_id, 1, 0, now)])
    except ConditionsFailed as refused:
        return NOT_PROCESSING if len(actions) in refused.failed else "taken"
    return None
