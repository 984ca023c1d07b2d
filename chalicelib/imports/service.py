"""Imports: the record of one bulk upload, its routes, and the bookkeeping shared by its stages.

Life of an import: ``pending_upload`` (record written, upload form handed out; due in
``due-index`` when the upload window closes) → ``processing`` (the storage event arrived, the file
passed its checks; rows are parsed and queued, see ``pipeline``; the queue consumer writes
them, see ``consumer``; due at its deadline, ``IMPORT_DEADLINE_SECONDS`` later, when the
cleanup job fails it if it is still processing) → ``completed`` or ``failed``. A finished import
is put back into ``due-index`` (due at once), so the cleanup job removes its source file.

The table is read and written in ``repository``; records are ``records.ImportRecord``.

Progress is counted atomically on the record: ``rows_imported``, ``rows_failed`` and their sum
``rows_done``, which DynamoDB can compare with ``rows_total`` in a condition. Whichever writer
makes them equal (the last queue message, or the parser when it finishes last) completes the
import. Row errors are records of their own (one per line, in line order; see ``store.layout``), so
concurrent writers never contend for one list; the first 100 are copied into the import when it
finishes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from chalicelib.attachments.models import IMPORT_CONTENT_TYPES, ImportCreate, parse_upload_request
from chalicelib.config.settings import Settings, require
from chalicelib.files import uploads
from chalicelib.imports import repository
from chalicelib.imports.records import ImportRecord
from chalicelib.limits import is_valid_id
from chalicelib.problems import Problem
from chalicelib.store import paging
from chalicelib.store.transactions import Completion, answer_after
from chalicelib.util import clock, ulid
from chalicelib.util.jsontypes import JsonObject, JsonValue

LISTING = "imports"


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


class ImportService:
    """The import routes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.table = require(settings.table_name, "TABLE_NAME")

    def create(self, tenant: str, body: JsonValue, completion: Completion | None = None) -> JsonObject:
        """Create an import awaiting its upload; ``completion`` (given the answer) may return one
        more transaction entry to write with it — the idempotency record of the request."""
        model = parse_upload_request(ImportCreate, body, self.settings.max_import_bytes)
        created = clock.now_text()
        record = ImportRecord(
            id=ulid.new(),
            format=model.format,
            size=model.size,
            filename=model.filename,
            status="pending_upload",
            created_at=created, updated_at=created,
        )
        window = self.settings.upload_window_seconds
        return answer_after(
            self.to_api(tenant, record), completion, lambda also: repository.create(self.table, tenant, record, window, also)
        )

    def get(self, tenant: str, import_id: str) -> JsonObject:
        record = repository.get(self.table, tenant, import_id) if is_valid_id(import_id) else None
        if record is None:
            raise Problem("not-found", "import does not exist")
        return self.to_api(tenant, record)

    def list_page(self, tenant: str, params: dict[str, str]) -> JsonObject:
        page = paging.page_request(params, tenant=tenant, listing=LISTING, secrets=self.settings.cursor_secrets)
        records, last_id = repository.list_page(self.table, tenant, page.limit, not page.descending, page.after)
        next_cursor = paging.next_cursor(page, last_id, self.settings.cursor_signing_secret)
        return {"imports": [self.to_api(tenant, r) for r in records], "next_cursor": next_cursor}

    def to_api(self, tenant: str, record: ImportRecord) -> JsonObject:
        if record.finished:
            errors = list(record.errors)
        elif record.rows_failed:
            errors = repository.first_row_errors(self.table, tenant, record.id)
        else:
            errors = []
        result: dict[str, Any] = {
            "id": record.id,
            "format": record.format,
            "size": record.size,
            "filename": record.filename,
            "status": record.status,
            "rows_total": record.rows_total,
            "rows_imported": record.rows_imported,
            "rows_failed": record.rows_failed,
            "errors": [{"line": e.line, "detail": e.detail} for e in errors],
            "created_at": record.created_at,
            "updated_at": record.updated_at,
            "completed_at": record.completed_at,
        }
        if record.status == "pending_upload":
            expires_at = uploads.form_expiry(record.created_at, self.settings.upload_window_seconds)
            if expires_at is not None:
                result["upload"] = uploads.upload_form(
                    require(self.settings.bucket_name, "BUCKET_NAME"),
                    uploads.import_key(tenant, record.id),
                    IMPORT_CONTENT_TYPES[record.format],
                    record.size,
                    expires_at,
                )
        return result
