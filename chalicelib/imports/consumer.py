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
stays on the queue, is delivered again, and the marker makes the retry safe.

Every chunk ends accounted for, whatever its rows do:

- an unexpected exception while checking or preparing one row is that row's error, at its line;
- when the transaction is refused because of what one row holds (``ValidationException``, a
  request botocore will not send), the rows are applied one transaction each, so a poison row
  costs only itself; each row's item carries ``import_ref`` (import and line), so a row applied
  that way is recognised, and not counted again, when the message is delivered again;
- on the last delivery before the dead-letter queue (``ApproximateReceiveCount`` reaching the
  queue's ``maxReceiveCount``, ``MAX_RECEIVES``), a chunk that still fails is accounted instead
  of raised: its rows not yet written become row errors; if even that cannot be written, the
  import fails with the reason. Only a message that is not a chunk at all reaches the
  dead-letter queue, and the cleanup job's deadline ends any import that still waits for one.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NamedTuple

from botocore.exceptions import ClientError, ParamValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chalicelib.config.settings import Settings, require
from chalicelib.imports import repository as imports
from chalicelib.imports.parser import describe, unexpected
from chalicelib.imports.records import ImportRecord
from chalicelib.items.models import ItemCreate
from chalicelib.items.records import ItemFields
from chalicelib.items.repository import ItemRepository, is_live, record_of
from chalicelib.items.rules import to_field_errors
from chalicelib.limits import ID_PATTERN
from chalicelib.store.transactions import refused_for_contents
from chalicelib.util import clock, jsonutil, metrics

# A transaction holds at most 100 actions: the rows (or their error records), the marker, the counters.
MAX_ROWS = 98
MAX_TRANSACTION_ACTIONS = 100
# Each round either applies the chunk or turns at least one row into a row error.
MAX_ROUNDS = MAX_ROWS + 1
# The work queue's ``maxReceiveCount`` (infra/template.yaml; a unit test keeps the two equal).
MAX_RECEIVES = 5


class Row(NamedTuple):
    """A valid row: its item's id and fields, and the transaction actions that create it."""

    item_id: str
    fields: ItemFields
    actions: list[dict[str, Any]]


class RowCausedError(Exception):
    """The chunk's transaction was refused for what a row holds; the rows go one by one."""


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
    except Exception as exc:  # one row's surprise is that row's error
        return unexpected(row.line, exc)
    if model.id is None:
        return "/id is required"
    return model.id, ItemFields(
        name=model.name, description=model.description, tags=tuple(model.tags), data=model.data, expires_at=model.expires_at
    )


class ImportConsumer:
    def __init__(self, settings: Settings) -> None:
        self.table = require(settings.table_name, "TABLE_NAME")
        self.items = ItemRepository(self.table)

    def apply(self, body: str, receive_count: int = 1) -> str:
        """Apply one queue message; returns what was done (for the log), raises to be retried.

        On the last delivery (``receive_count >= MAX_RECEIVES``) a chunk that fails is accounted
        for instead (see the module's docstring), so it never waits in the dead-letter queue.
        """
        message = parse(body)
        try:
            return self._apply(message)
        except Exception as exc:
            if receive_count < MAX_RECEIVES:
                raise
            return self._account(message, exc, receive_count)

    def _ref(self, import_id: str, line: int) -> str:
        return f"{import_id}#{line}"

    def _prepare(
        self, message: RowsMessage, now: str
    ) -> tuple[dict[int, Row], dict[int, str]]:
        """Each row's id, fields and create actions, or its row error."""
        rows: dict[int, Row] = {}
        errors: dict[int, str] = {}
        for row in message.rows:
            checked = _validate(row)
            if isinstance(checked, str):
                errors[row.line] = checked
                continue
            item_id, fields = checked
            try:
                actions = self.items.create_actions(
                    message.tenant, item_id, fields, now, self._ref(message.import_id, row.line)
                )
            except Exception as exc:  # one row's surprise is that row's error
                errors[row.line] = unexpected(row.line, exc)
                continue
            rows[row.line] = Row(item_id, fields, actions)
        return rows, errors

    def _read(
        self, message: RowsMessage, item_ids: list[str]
    ) -> tuple[ImportRecord | None, bool, dict[str, dict[str, Any]]]:
        """One ``BatchGetItem``: the import, whether the chunk's marker exists, the rows' items by id."""
        item_keys = [self.items.key(message.tenant, item_id) for item_id in item_ids]
        record, applied, found = imports.read_chunk(
            self.table, message.tenant, message.import_id, message.chunk, item_keys
        )
        items = {item_id: item for item_id, item in zip(item_ids, found, strict=True) if item is not None}
        return record, applied, items

    def _apply(self, message: RowsMessage) -> str:
        tenant, import_id = message.tenant, message.import_id
        now = clock.now_text()
        rows, errors = self._prepare(message, now)
        record, applied, existing_items = self._read(message, [row.item_id for row in rows.values()])
        if record is None:
            return "ignored: unknown import"
        if applied:
            return "ignored: chunk already applied"
        if record.status != "processing":
            return f"ignored: the import is {record.status}"

        replaced: list[dict[str, Any]] = []
        earlier = 0  # rows written one by one by an earlier delivery (already counted)
        for line, (item_id, fields, _) in list(rows.items()):
            existing = existing_items.get(item_id)
            if existing is None:
                continue
            if existing.get("import_ref") == self._ref(import_id, line):
                del rows[line]
                earlier += 1
            elif is_live(existing, now):
                errors[line] = f"an item with id '{item_id}' already exists"
                del rows[line]
            else:
                replaced.append(existing)  # expired: its id is free, its attachments are not the row's
                # ... and its tags' index records go with it, in the row's own write.
                actions = self.items.create_actions(
                    tenant, item_id, fields, now, self._ref(import_id, line), replacing=record_of(existing)
                )
                rows[line] = Row(item_id, fields, actions)

        try:
            if sum(len(row.actions) for row in rows.values()) + len(errors) + 2 > MAX_TRANSACTION_ACTIONS:
                raise RowCausedError()  # rows with many tags: one transaction each
            outcome = self._apply_chunk(tenant, import_id, message.chunk, rows, errors, now)
        except RowCausedError:
            outcome = self._apply_one_by_one(tenant, import_id, message.chunk, rows, errors, now)
        if outcome is not None:
            return outcome
        for old in replaced:
            self.items.bury_attachments_of(tenant, record_of(old))
        imports.try_complete(self.table, tenant, import_id)
        imported = len(rows) + earlier
        metrics.record(metrics.IMPORTS, {"ImportRowsImported": len(rows), "ImportRowsFailed": len(errors)})
        return f"chunk {message.chunk}: {imported} imported, {len(errors)} failed"

    def _apply_chunk(
        self, tenant: str, import_id: str, chunk: int,
        rows: dict[int, Row], errors: dict[int, str], now: str,
    ) -> str | None:
        """The chunk in one transaction (the happy path); None when applied, else why it was ignored."""
        for _round in range(MAX_ROUNDS):
            outcome = self._transact(tenant, import_id, chunk, rows, errors, now)
            if outcome is None:
                return None
            if isinstance(outcome, str):
                return outcome
            for line in outcome:  # ids taken by another writer since the read
                errors[line] = f"an item with id '{rows.pop(line).item_id}' already exists"
        raise RuntimeError("import chunk could not be applied")  # pragma: no cover - every round removes a row

    def _apply_one_by_one(
        self, tenant: str, import_id: str, chunk: int,
        rows: dict[int, Row], errors: dict[int, str], now: str,
    ) -> str | None:
        """Each row in a transaction of its own (its item and the import's counters), then the
        chunk's row errors and marker: a row the database refuses costs only itself."""
        for line, (item_id, _, actions) in list(rows.items()):
            try:
                outcome = imports.apply_row(self.table, tenant, import_id, actions, now)
            except ClientError as exc:
                if not refused_for_contents(exc):
                    raise
                del rows[line]
                errors[line] = unexpected(line, exc)
                continue
            except ParamValidationError as exc:
                del rows[line]
                errors[line] = unexpected(line, exc)
                continue
            if outcome == imports.NOT_PROCESSING:
                return outcome
            if outcome is not None:
                del rows[line]
                if self._written_by(tenant, item_id, self._ref(import_id, line)):
                    continue  # this very row, written by a delivery that crashed afterwards
                errors[line] = f"an item with id '{item_id}' already exists"
        # The rows are counted; what remains is the errors, the marker and the completion check.
        return self._apply_chunk(tenant, import_id, chunk, {}, errors, now)

    def _written_by(self, tenant: str, item_id: str, ref: str) -> bool:
        found = imports.stored_at(self.table, self.items.key(tenant, item_id))
        return found is not None and found.get("import_ref") == ref

    def _account(self, message: RowsMessage, exc: Exception, receive_count: int) -> str:
        """The last delivery failed: the chunk's unwritten rows become row errors, or the import fails."""
        reason = f"could not be written in {receive_count} attempts ({type(exc).__name__})"
        tenant, import_id = message.tenant, message.import_id
        now = clock.now_text()
        try:
            rows, errors = self._prepare(message, now)
            record, applied, existing_items = self._read(message, [row.item_id for row in rows.values()])
            if record is None or applied or record.status != "processing":
                return "ignored: nothing to account for"
            for line, (item_id, _, _) in rows.items():
                if existing_items.get(item_id, {}).get("import_ref") != self._ref(import_id, line):
                    errors[line] = reason
            outcome = self._apply_chunk(tenant, import_id, message.chunk, {}, errors, now)
            if outcome is not None:
                return outcome
            imports.try_complete(self.table, tenant, import_id)
            return f"chunk {message.chunk}: accounted as {len(errors)} row errors after {receive_count} deliveries"
        except Exception:  # the import ends either way
            first = message.rows[0].line
            detail = f"the rows from line {first} could not be written: {reason}"
            imports.fail(self.table, tenant, import_id, detail=detail, line=first, from_status=("processing",))
            return f"chunk {message.chunk}: import failed ({detail})"

    def _transact(
        self, tenant: str, import_id: str, chunk: int,
        rows: dict[int, Row], errors: dict[int, str], now: str,
    ) -> str | list[int] | None:
        """One attempt: None when applied, a reason to ignore the chunk, or the rows whose ids were taken."""
        lines = list(rows)
        try:
            outcome = imports.apply_chunk(
                self.table, tenant, import_id, chunk, [row.actions for row in rows.values()], errors, now
            )
        except ParamValidationError as exc:
            raise RowCausedError() from exc
        except ClientError as exc:
            if refused_for_contents(exc) and rows:
                raise RowCausedError() from exc
            raise
        if isinstance(outcome, list):
            return [lines[i] for i in outcome]
        return outcome
