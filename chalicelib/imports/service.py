"""Imports: the record of one bulk upload, its routes, and the bookkeeping shared by its stages.

Life of an import: ``pending_upload`` (record written, upload form handed out; due in
``due-index`` when the upload window closes) → ``processing`` (the storage event arrived, the file
passed its checks; rows are parsed and queued, see ``import_pipeline``; the queue consumer writes
them, see ``import_consumer``; due at its deadline, ``IMPORT_DEADLINE_SECONDS`` later, when the
cleanup job fails it if it is still processing) → ``completed`` or ``failed``. A finished import is put back into
``due-index`` (due at once), so the cleanup job removes its source file.

Progress is counted atomically on the record: ``rows_imported``, ``rows_failed`` and their sum
``rows_done``, which DynamoDB can compare with ``rows_total`` in a condition. Whichever writer
makes them equal (the last queue message, or the parser when it finishes last) completes the
import. Row errors are records of their own (``IMPERR#<import id>#<line>``, in line order), so
concurrent writers never contend for one list; the first 100 are copied into the import when it
finishes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError
from pydantic import ValidationError

from chalicelib.attachments.models import IMPORT_CONTENT_TYPES, MAX_LISTED_ROW_ERRORS, ImportCreate
from chalicelib.config.settings import Settings, require
from chalicelib.files import uploads
from chalicelib.items.models import to_field_errors
from chalicelib.items.records import Completion
from chalicelib.limits import ID_PATTERN
from chalicelib.problems import Problem, field_errors
from chalicelib.store import aws, paging
from chalicelib.store import transactions as dynamo_batch
from chalicelib.store.codec import Expression, from_item, to_attr, to_item
from chalicelib.store.layout import due_pk, tenant_pk
from chalicelib.store.writes import CompanionRefused, applied, cancellation_reasons, is_condition_failure
from chalicelib.util import clock, ulid

PREFIX = "IMPORT#"
ERROR_PREFIX = "IMPERR#"
CHUNK_PREFIX = "IMPCHUNK#"
LISTING = "imports"
FINAL = ("completed", "failed")
# Row-error and chunk records outlive any redelivery (the queue keeps messages 4 days, the
# dead-letter queue 14); DynamoDB's TTL removes them afterwards at no cost.
WORK_RECORD_TTL = timedelta(days=30)

_ID = re.compile(ID_PATTERN)


def record_key(tenant: str, import_id: str) -> dict[str, Any]:
    return {"pk": to_attr(tenant_pk(tenant)), "sk": to_attr(PREFIX + import_id)}


def error_key(tenant: str, import_id: str, line: int) -> dict[str, Any]:
    return {"pk": to_attr(tenant_pk(tenant)), "sk": to_attr(f"{ERROR_PREFIX}{import_id}#{line:010d}")}


def chunk_key(tenant: str, import_id: str, chunk: int) -> dict[str, Any]:
    return {"pk": to_attr(tenant_pk(tenant)), "sk": to_attr(f"{CHUNK_PREFIX}{import_id}#{chunk:08d}")}


def work_record_ttl() -> int:
    return clock.epoch_seconds(clock.now() + WORK_RECORD_TTL)


def row_id(import_id: str, created_at: str, line: int) -> str:
    """The id of a row without one: the same for the same (import, line), so a retry reuses it.

    A ULID whose time is the import's creation and whose remaining bits are the import (hashed)
    and the line, so the rows of one import list together, in file order.
    """
    return row_ids(import_id, created_at)(line)


def row_ids(import_id: str, created_at: str) -> Callable[[int], str]:
    """``row_id`` for one import, for many lines: the import's part is computed once.

    The line fills the ULID's last 32 bits, which are its last 6 characters and the low 2 bits of
    the 7th from the end (whose other 3 bits are the hash's): only those 7 characters vary.
    """
    created = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    timestamp_ms = int(created.timestamp() * 1000)
    digest = hashlib.sha256(import_id.encode()).digest()[:6]
    prefix = ulid.from_parts(timestamp_ms, digest + bytes(4))[:19]
    high = (digest[-1] & 0b111) << 32
    alphabet = ulid.ALPHABET
    pairs = [alphabet[n >> 5] + alphabet[n & 31] for n in range(1024)]  # 10 bits → 2 characters

    def for_line(line: int) -> str:
        value = high | (line & 0xFFFFFFFF)
        return (
            prefix + alphabet[value >> 30] + pairs[(value >> 20) & 1023] + pairs[(value >> 10) & 1023] + pairs[value & 1023]
        )

    return for_line


def get_record(table: str, tenant: str, import_id: str) -> dict[str, Any] | None:
    response = aws.dynamodb().get_item(TableName=table, Key=record_key(tenant, import_id), ConsistentRead=True)
    return from_item(response["Item"]) if response.get("Item") else None


def put_row_errors(table: str, tenant: str, import_id: str, errors: list[tuple[int, str]]) -> None:
    """Store row errors; writing one twice stores the same record, so retries are harmless."""
    ttl = work_record_ttl()
    dynamo_batch.write(
        table,
        [
            dynamo_batch.put(
                {**error_key(tenant, import_id, line), **to_item({"line": line, "detail": detail, "ttl": ttl})}
            )
            for line, detail in errors
        ],
    )


def first_row_errors(table: str, tenant: str, import_id: str) -> list[dict[str, Any]]:
    response = aws.dynamodb().query(
        TableName=table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues={
            ":pk": to_attr(tenant_pk(tenant)),
            ":prefix": to_attr(f"{ERROR_PREFIX}{import_id}#"),
        },
        ConsistentRead=True,
        Limit=MAX_LISTED_ROW_ERRORS,
    )
    return [{"line": int(r["line"]), "detail": r["detail"]} for r in map(from_item, response.get("Items", []))]


def _finish_sets(expr: Expression, status: str, errors: list[dict[str, Any]], pk: str, sk: str) -> list[str]:
    now = clock.now_text()
    return [
        f"{expr.name('status')} = {expr.value(status)}",
        f"{expr.name('errors')} = {expr.value(errors)}",
        f"{expr.name('completed_at')} = {expr.value(now)}",
        f"{expr.name('updated_at')} = {expr.value(now)}",
        # Due at once: the next cleanup run removes the source file.
        f"{expr.name('due_pk')} = {expr.value(due_pk(pk, sk))}",
        f"{expr.name('due_at')} = {expr.value(now)}",
    ]


def fail(
    table: str, tenant: str, import_id: str, *, detail: str, line: int | None, from_status: tuple[str, ...]
) -> bool:
    """Mark the import failed (from one of ``from_status``); False when it was in another state."""
    expr = Expression()
    pk, sk = tenant_pk(tenant), PREFIX + import_id
    sets = _finish_sets(expr, "failed", [{"line": line, "detail": detail}], pk, sk)
    statuses = ", ".join(expr.value(s) for s in from_status)
    try:
        aws.dynamodb().update_item(
            TableName=table,
            Key=record_key(tenant, import_id),
            UpdateExpression="SET " + ", ".join(sets),
            ConditionExpression=f"{expr.name('status')} IN ({statuses})",
            **expr.kwargs(),
        )
    except ClientError as exc:
        if is_condition_failure(exc):
            return False
        raise
    return True


def try_complete(table: str, tenant: str, import_id: str) -> bool:
    """Complete the import if every row is accounted for; True if this call completed it."""
    record = get_record(table, tenant, import_id)
    if record is None or record["status"] != "processing" or record.get("rows_total") is None:
        return False
    total = int(record["rows_total"])
    if int(record.get("rows_done", 0)) != total:
        return False
    errors = first_row_errors(table, tenant, import_id) if int(record.get("rows_failed", 0)) else []
    expr = Expression()
    sets = _finish_sets(expr, "completed", errors, tenant_pk(tenant), PREFIX + import_id)
    condition = f"{expr.name('status')} = {expr.value('processing')} AND {expr.name('rows_done')} = {expr.value(total)}"
    try:
        aws.dynamodb().update_item(
            TableName=table,
            Key=record_key(tenant, import_id),
            UpdateExpression="SET " + ", ".join(sets),
            ConditionExpression=condition,
            **expr.kwargs(),
        )
    except ClientError as exc:
        if is_condition_failure(exc):
            return False
        raise
    return True


def settle(table: str, tenant: str, import_id: str, status: str) -> bool:
    """Take a finished import out of the cleanup job's index; False if its status moved on."""
    expr = Expression()
    return applied(
        aws.dynamodb().update_item,
        TableName=table,
        Key=record_key(tenant, import_id),
        UpdateExpression=f"REMOVE {expr.name('due_pk')}, {expr.name('due_at')}",
        ConditionExpression=f"{expr.name('status')} = {expr.value(status)}",
        **expr.kwargs(),
    )


class ImportService:
    """The import routes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.table = require(settings.table_name, "TABLE_NAME")

    def create(self, tenant: str, body: Any, completion: Completion | None = None) -> dict[str, Any]:
        """Create an import awaiting its upload; ``completion`` (given the answer) may return one
        more transaction entry to write with it — the idempotency record of the request."""
        try:
            model = ImportCreate.model_validate(body)
        except ValidationError as exc:
            raise field_errors("validation-error", to_field_errors(exc)) from exc
        limit = self.settings.max_import_bytes
        if model.size > limit:
            raise field_errors("validation-error", [{"pointer": "/size", "detail": f"must be at most {limit} bytes"}])
        now = clock.now()
        import_id = ulid.new()
        pk, sk = tenant_pk(tenant), PREFIX + import_id
        record: dict[str, Any] = {
            "pk": pk,
            "sk": sk,
            "id": import_id,
            "format": model.format,
            "size": model.size,
            "status": "pending_upload",
            "rows_imported": 0,
            "rows_failed": 0,
            "rows_done": 0,
            "created_at": clock.format_timestamp(now),
            "updated_at": clock.format_timestamp(now),
            "due_pk": due_pk(pk, sk),
            "due_at": clock.format_timestamp(now + timedelta(seconds=self.settings.upload_window_seconds)),
        }
        answer = self.to_api(tenant, record)
        also = completion(answer) if completion is not None else None
        put: Any = {"TableName": self.table, "Item": to_item(record), "ConditionExpression": "attribute_not_exists(pk)"}
        try:
            if also is None:
                aws.dynamodb().put_item(**put)
            else:
                dynamo_batch.transact([{"Put": put}, also])
        except ClientError as exc:
            reasons = cancellation_reasons(exc) or []
            if is_condition_failure(exc) or (reasons and reasons[0].get("Code") == "ConditionalCheckFailed"):
                # The id is fresh: only an earlier attempt of this very call (its answer lost, then
                # retried by the client library) can have written it.
                return answer
            if any(reason.get("Code") == "ConditionalCheckFailed" for reason in reasons[1:]):
                raise CompanionRefused() from exc
            raise
        return answer

    def get(self, tenant: str, import_id: str) -> dict[str, Any]:
        if not _ID.match(import_id):
            raise Problem("not-found", "import does not exist")
        record = get_record(self.table, tenant, import_id)
        if record is None:
            raise Problem("not-found", "import does not exist")
        return self.to_api(tenant, record)

    def list_page(self, tenant: str, params: dict[str, str]) -> dict[str, Any]:
        page = paging.page_request(params, tenant=tenant, listing=LISTING, secrets=self.settings.cursor_secrets)
        kwargs: dict[str, Any] = {}
        if page.after is not None:
            kwargs["ExclusiveStartKey"] = record_key(tenant, page.after)
        limit = page.limit
        response = aws.dynamodb().query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": to_attr(tenant_pk(tenant)), ":prefix": to_attr(PREFIX)},
            Limit=limit + 1,
            ScanIndexForward=not page.descending,
            **kwargs,
        )
        records = [from_item(i) for i in response.get("Items", [])]
        last_id: str | None = None
        if len(records) > limit:
            records = records[:limit]
            last_id = str(records[-1]["id"])
        elif response.get("LastEvaluatedKey"):
            last_id = str(response["LastEvaluatedKey"]["sk"]["S"])[len(PREFIX) :]
        next_cursor = paging.next_cursor(page, last_id, self.settings.cursor_signing_secret)
        return {"imports": [self.to_api(tenant, r) for r in records], "next_cursor": next_cursor}

    def to_api(self, tenant: str, record: dict[str, Any]) -> dict[str, Any]:
        status = record["status"]
        if status in FINAL:
            errors = list(record.get("errors", []))
        elif int(record.get("rows_failed", 0)):
            errors = first_row_errors(self.table, tenant, record["id"])
        else:
            errors = []
        result: dict[str, Any] = {
            "id": record["id"],
            "format": record["format"],
            "size": int(record["size"]),
            "status": status,
            "rows_total": int(record["rows_total"]) if record.get("rows_total") is not None else None,
            "rows_imported": int(record.get("rows_imported", 0)),
            "rows_failed": int(record.get("rows_failed", 0)),
            "errors": [{"line": _line(e.get("line")), "detail": e["detail"]} for e in errors],
            "created_at": record["created_at"],
            "updated_at": record["updated_at"],
            "completed_at": record.get("completed_at"),
        }
        if status == "pending_upload":
            expires_at = uploads.form_expiry(record["created_at"], self.settings.upload_window_seconds)
            if expires_at is not None:
                result["upload"] = uploads.upload_form(
                    require(self.settings.bucket_name, "BUCKET_NAME"),
                    uploads.import_key(tenant, record["id"]),
                    IMPORT_CONTENT_TYPES[record["format"]],
                    int(record["size"]),
                    expires_at,
                )
        return result


def _line(value: Any) -> int | None:
    return int(value) if value is not None else None
