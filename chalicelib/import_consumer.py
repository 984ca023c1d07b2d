"""The work-queue consumer: applies one import chunk atomically, exactly once.

Per message (one chunk of one import, at most ``MAX_ROWS`` rows):

1. each row is validated again with ``ItemCreate`` (``expires_at`` must still be in the future);
2. one consistent ``BatchGetItem`` reads the import, the chunk's marker and the rows' items: a
   chunk whose marker exists was applied before (a redelivery) and is acknowledged; a row whose id
   is held by a live item is a row error, never an overwrite;
3. one ``TransactWriteItems`` applies the whole chunk: every row's conditional put, every row
   error's record, the chunk's marker (only if absent) and the import's counters. All of it
   happens, or none of it. When a row's condition fails inside the transaction (another writer
   took the id meanwhile), that row becomes a row error and the transaction is sent again;
4. the import is completed if this was the last piece missing.

So a chunk of 50 rows costs one read and one write call. A failure anywhere raises: the message
stays on the queue, is delivered again, and the marker makes the retry safe. A message that keeps
failing ends in the dead-letter queue.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chalicelib import attachments, clock, dynamo_batch, imports, jsonutil
from chalicelib.dynamo import Expression, cancellation_reasons, from_item, to_item
from chalicelib.import_parser import describe
from chalicelib.item_repository import ItemFields, ItemRepository, is_live
from chalicelib.limits import ID_PATTERN
from chalicelib.models import ItemCreate, to_field_errors
from chalicelib.settings import Settings, require

# A transaction holds at most 100 actions: the rows (or their error records), the marker, the counters.
MAX_ROWS = 98
# Each round either applies the chunk or turns at least one row into a row error.
MAX_ROUNDS = MAX_ROWS + 1


class PoisonMessageError(ValueError):
    """The message is not a chunk this consumer can read; it will end in the dead-letter queue."""


class MessageRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    line: Annotated[int, Field(ge=1)]
    fields: dict[str, Any]


class RowsMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["import_rows"]
    tenant: Annotated[str, Field(pattern=ID_PATTERN)]
    import_id: Annotated[str, Field(pattern=ID_PATTERN)]
    chunk: Annotated[int, Field(ge=0)]
    rows: Annotated[list[MessageRow], Field(min_length=1, max_length=MAX_ROWS)]


def parse(body: str) -> RowsMessage:
    try:
        return RowsMessage.model_validate(jsonutil.loads(body))
    except (jsonutil.MalformedJSON, ValidationError) as exc:
        raise PoisonMessageError(f"not an import chunk: {str(exc).splitlines()[0]}") from exc


def _validate(row: MessageRow) -> tuple[str, ItemFields] | str:
    """The row's id and fields, or its row error."""
    try:
        model = ItemCreate.model_validate(row.fields)
    except ValidationError as exc:
        return describe(to_field_errors(exc))
    if model.id is None:
        return "/id is required"
    return model.id, ItemFields(
        name=model.name, description=model.description, tags=model.tags, data=model.data, expires_at=model.expires_at
    )


class ImportConsumer:
    def __init__(self, settings: Settings) -> None:
        self.table = require(settings.table_name, "TABLE_NAME")
        self.items = ItemRepository(self.table)

    def apply(self, body: str) -> str:
        """Apply one queue message; returns what was done (for the log), raises to be retried."""
        message = parse(body)
        tenant, import_id = message.tenant, message.import_id
        rows: dict[int, tuple[str, ItemFields]] = {}
        errors: dict[int, str] = {}
        for row in message.rows:
            checked = _validate(row)
            if isinstance(checked, str):
                errors[row.line] = checked
            else:
                rows[row.line] = checked

        record_key = imports.record_key(tenant, import_id)
        marker_key = imports.chunk_key(tenant, import_id, message.chunk)
        item_keys = [self.items.key(tenant, item_id) for item_id, _ in rows.values()]
        found = {(r["pk"], r["sk"]): r for r in map(from_item, dynamo_batch.get(self.table, [record_key, marker_key, *item_keys]))}
        record = found.get((record_key["pk"]["S"], record_key["sk"]["S"]))
        if record is None:
            return "ignored: unknown import"
        if (marker_key["pk"]["S"], marker_key["sk"]["S"]) in found:
            return "ignored: chunk already applied"
        if record["status"] != "processing":
            return f"ignored: the import is {record['status']}"

        now = clock.now_text()
        replaced: list[dict[str, Any]] = []
        for line, (item_id, _) in list(rows.items()):
            key = self.items.key(tenant, item_id)
            existing = found.get((key["pk"]["S"], key["sk"]["S"]))
            if existing is None:
                continue
            if is_live(existing, now):
                errors[line] = f"an item with id '{item_id}' already exists"
                del rows[line]
            else:
                replaced.append(existing)  # expired: its id is free, its attachments are not the row's

        for _round in range(MAX_ROUNDS):
            outcome = self._transact(tenant, import_id, message.chunk, rows, errors, now)
            if outcome is None:
                break
            if isinstance(outcome, str):
                return outcome
            for line in outcome:  # ids taken by another writer since the read
                errors[line] = f"an item with id '{rows.pop(line)[0]}' already exists"
        else:  # pragma: no cover - every round removes a row, so the loop ends before this
            raise RuntimeError("import chunk could not be applied")
        for old in replaced:
            attachments.bury_if_any(self.table, tenant, old)
        imports.try_complete(self.table, tenant, import_id)
        return f"chunk {message.chunk}: {len(rows)} imported, {len(errors)} failed"

    def _transact(
        self, tenant: str, import_id: str, chunk: int,
        rows: dict[int, tuple[str, ItemFields]], errors: dict[int, str], now: str,
    ) -> str | list[int] | None:
        """One attempt: None when applied, a reason to ignore the chunk, or the rows whose ids were taken."""
        ttl = imports.work_record_ttl()
        lines = list(rows)
        actions: list[dict[str, Any]] = [
            self.items.create_action(tenant, item_id, fields, now, f"{import_id}#{line}")
            for line, (item_id, fields) in rows.items()
        ]
        actions += [
            {"Put": {"TableName": self.table, "Item": {**imports.error_key(tenant, import_id, line),
                                                        **to_item({"line": line, "detail": detail, "ttl": ttl})}}}
            for line, detail in errors.items()
        ]
        marker = {**imports.chunk_key(tenant, import_id, chunk), **to_item({"ttl": ttl})}
        actions.append({"Put": {"TableName": self.table, "Item": marker, "ConditionExpression": "attribute_not_exists(pk)"}})
        expr = Expression()
        done = len(rows) + len(errors)
        update = (
            f"SET {expr.name('updated_at')} = {expr.value(now)}"
            f" ADD {expr.name('rows_imported')} {expr.value(len(rows))},"
            f" {expr.name('rows_failed')} {expr.value(len(errors))},"
            f" {expr.name('rows_done')} {expr.value(done)}"
        )
        actions.append({"Update": {
            "TableName": self.table,
            "Key": imports.record_key(tenant, import_id),
            "UpdateExpression": update,
            "ConditionExpression": f"{expr.name('status')} = {expr.value('processing')}",
            **expr.kwargs(),
        }})
        try:
            dynamo_batch.transact(actions)
        except ClientError as exc:
            reasons = cancellation_reasons(exc)
            if not reasons:
                raise
            failed = [i for i, reason in enumerate(reasons) if reason.get("Code") == "ConditionalCheckFailed"]
            if len(actions) - 2 in failed:
                return "ignored: chunk already applied"
            if len(actions) - 1 in failed:
                return "ignored: the import is no longer processing"
            taken = [lines[i] for i in failed if i < len(lines)]
            if not taken:
                raise
            return taken
        return None
