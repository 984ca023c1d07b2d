"""The work-queue consumer: writes the rows of one import chunk, exactly once.

Per message (one chunk of one import):

1. one consistent ``BatchGetItem`` reads the import and the chunk's marker; a chunk whose marker
   exists was applied before (a redelivery) and is acknowledged without touching any row;
2. each row is validated again with ``ItemCreate`` (``expires_at`` must still be in the future)
   and written with a conditional put, in parallel: an id held by another item is a row error,
   never an overwrite; an item this very row wrote on an earlier, interrupted delivery (same
   ``import_ref``) counts as imported;
3. row errors are stored (``BatchWriteItem``, unprocessed items retried with backoff);
4. one transaction writes the chunk's marker (only if absent) and adds the chunk's counts to the
   import, so counting happens once however often the message is delivered;
5. the import is completed if this was the last piece missing.

A failure anywhere raises: the message stays on the queue, is delivered again, and the steps
above make the retry safe. A message that keeps failing ends in the dead-letter queue.
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, Literal

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chalicelib import clock, dynamo_batch, imports, jsonutil
from chalicelib.dynamo import Expression, cancellation_reasons, from_item, to_item
from chalicelib.import_parser import describe
from chalicelib.item_repository import ItemExists, ItemFields, ItemRepository
from chalicelib.models import ID_PATTERN, ItemCreate, to_field_errors
from chalicelib.settings import Settings, require

ROW_WRITERS = 8
MAX_ROWS = 1000


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


@functools.cache
def _writers() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=ROW_WRITERS, thread_name_prefix="import-rows")


def parse(body: str) -> RowsMessage:
    try:
        return RowsMessage.model_validate(jsonutil.loads(body))
    except (jsonutil.MalformedJSON, ValidationError) as exc:
        raise PoisonMessageError(f"not an import chunk: {str(exc).splitlines()[0]}") from exc


class ImportConsumer:
    def __init__(self, settings: Settings) -> None:
        self.table = require(settings.table_name, "TABLE_NAME")
        self.items = ItemRepository(self.table)

    def apply(self, body: str) -> str:
        """Apply one queue message; returns what was done (for the log), raises to be retried."""
        message = parse(body)
        tenant, import_id = message.tenant, message.import_id
        found = [
            from_item(i)
            for i in dynamo_batch.get(
                self.table,
                [imports.record_key(tenant, import_id), imports.chunk_key(tenant, import_id, message.chunk)],
            )
        ]
        record = next((r for r in found if str(r["sk"]).startswith(imports.PREFIX)), None)
        if record is None:
            return "ignored: unknown import"
        if any(str(r["sk"]).startswith(imports.CHUNK_PREFIX) for r in found):
            return "ignored: chunk already applied"
        if record["status"] != "processing":
            return f"ignored: the import is {record['status']}"
        outcomes = list(_writers().map(lambda row: self._write(tenant, import_id, row), message.rows))
        errors = [(row.line, error) for row, error in zip(message.rows, outcomes, strict=True) if error is not None]
        if errors:
            imports.put_row_errors(self.table, tenant, import_id, errors)
        if self._count(tenant, import_id, message.chunk, len(message.rows) - len(errors), len(errors)):
            imports.try_complete(self.table, tenant, import_id)
        return f"chunk {message.chunk}: {len(message.rows) - len(errors)} imported, {len(errors)} failed"

    def _write(self, tenant: str, import_id: str, row: MessageRow) -> str | None:
        """Create the row's item; returns the row error, if any."""
        try:
            model = ItemCreate.model_validate(row.fields)
        except ValidationError as exc:
            return describe(to_field_errors(exc))
        if model.id is None:
            return "/id is required"
        fields = ItemFields(
            name=model.name,
            description=model.description,
            tags=model.tags,
            data=model.data,
            expires_at=model.expires_at,
        )
        reference = f"{import_id}#{row.line}"
        try:
            self.items.create(tenant, model.id, fields, import_ref=reference)
        except ItemExists as exc:
            if exc.existing is not None and exc.existing.get("import_ref") == reference:
                return None  # written by an earlier delivery of this very row
            return f"an item with id '{model.id}' already exists"
        return None

    def _count(self, tenant: str, import_id: str, chunk: int, imported: int, failed: int) -> bool:
        """Count the chunk once; False when it was counted already or the import moved on."""
        marker = {**imports.chunk_key(tenant, import_id, chunk), **to_item({"ttl": imports.work_record_ttl()})}
        expr = Expression()
        update = (
            f"SET {expr.name('updated_at')} = {expr.value(clock.now_text())}"
            f" ADD {expr.name('rows_imported')} {expr.value(imported)},"
            f" {expr.name('rows_failed')} {expr.value(failed)},"
            f" {expr.name('rows_done')} {expr.value(imported + failed)}"
        )
        absent = "attribute_not_exists(pk)"
        try:
            dynamo_batch.transact(
                [
                    {"Put": {"TableName": self.table, "Item": marker, "ConditionExpression": absent}},
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": imports.record_key(tenant, import_id),
                            "UpdateExpression": update,
                            "ConditionExpression": f"{expr.name('status')} = {expr.value('processing')}",
                            **expr.kwargs(),
                        }
                    },
                ]
            )
        except ClientError as exc:
            reasons = cancellation_reasons(exc)
            if reasons and any(r.get("Code") == "ConditionalCheckFailed" for r in reasons):
                return False
            raise
        return True
