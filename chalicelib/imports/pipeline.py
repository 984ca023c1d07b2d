"""From an uploaded import file to queued rows: what the storage-event handler does.

Two passes, so a file-level problem (not UTF-8, bad CSV header, an overlong line) found anywhere
in the file fails the import before a single row is queued ("failed" means nothing imported):

1. stream the object from S3 and run the file-level checks (``import_parser.check``: decoding
   and line lengths only, no row is parsed, so it runs at the speed of decoding);
2. stream it again, parse and validate each row, and send valid rows to the work queue with
   ``SendMessageBatch`` in bounded messages (``MAX_ROWS_PER_MESSAGE`` rows, ``MAX_MESSAGE_BYTES``,
   ``MAX_ROW_WRITES`` records written: each row's item and its tags' index records,
   at most 10 messages and ``MAX_BATCH_BYTES`` per call); row errors are stored; at the end
   ``rows_total`` is set.

Nothing is spooled: memory holds one line and one message batch, ``/tmp`` only the ids the file
gives explicitly (``IdRegistry``, for "id used twice").

Pass 2 continues across invocations when one is not enough: when the invocation's time is nearly
up (``CHECKPOINT_MARGIN_SECONDS`` before its end), the handler sends what it has sealed, records
a checkpoint on the import (``parse``: the byte offset and line of the first row not yet queued,
the next chunk number, the counts, the CSV header, the object's ETag) and starts the next
invocation by copying the object onto itself (an ``ObjectCreated:Copy`` event for the same
handler), which resumes from the checkpoint with a ranged ``GetObject``. The ids registry travels
with it as an object under ``import-work/``.

Everything is deterministic for a given file (row ids, chunk numbers: a checkpoint is always at a
message boundary of the packing from the file's start), so when the handler is run again for the
same upload (a duplicate event, Lambda's retry after a crash, a continuation that started twice)
it queues the same chunks, and the consumer applies each chunk once. Checkpoints are written
conditionally on the previous one, so of two runs from the same checkpoint only one goes on.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from chalicelib.attachments.models import IMPORT_CONTENT_TYPES
from chalicelib.config.settings import Settings, require
from chalicelib.files import uploads
from chalicelib.imports import parser as import_parser
from chalicelib.imports import repository as imports
from chalicelib.imports.records import ImportRecord
from chalicelib.imports.service import row_ids
from chalicelib.limits import MAX_TAGS
from chalicelib.store import aws
from chalicelib.store import transactions as dynamo_batch
from chalicelib.util import clock, jsonutil

READ_CHUNK_BYTES = 256 * 1024
# Stop reading rows this long before the invocation's time runs out: enough to send what is sealed,
# store the ids registry, write the checkpoint and start the continuation.
CHECKPOINT_MARGIN_SECONDS = 60.0
MAX_ROWS_PER_MESSAGE = 50
MAX_MESSAGE_BYTES = 64 * 1024
MAX_BATCH_MESSAGES = 10
MAX_BATCH_BYTES = 240 * 1024
ERROR_WRITE_BATCH = 25
SEND_ATTEMPTS = 6


class QueueRefusedError(RuntimeError):
    """Some messages could not be queued after every retry; the upload is processed again."""


def _chunks(body: Any) -> Iterator[bytes]:
    while True:
        chunk = body.read(READ_CHUNK_BYTES)
        if not chunk:
            return
        yield chunk


def deadline_for(context: Any, default_seconds: float = 900.0) -> float:
    """A ``time.monotonic()`` value after which no new row is started in this invocation."""
    remaining = default_seconds
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        remaining = context.get_remaining_time_in_millis() / 1000
    margin = min(CHECKPOINT_MARGIN_SECONDS, remaining * 0.2)
    return time.monotonic() + max(0.0, remaining - margin)


class ChunkSender:
    """Packs rows into bounded messages, and messages into bounded ``SendMessageBatch`` calls."""

    def __init__(self, queue_url: str, tenant: str, import_id: str, first_chunk: int = 0) -> None:
        self.queue_url = queue_url
        self.head = jsonutil.dumps({"kind": "import_rows", "tenant": tenant, "import_id": import_id})[:-1]
        self.rows: list[str] = []
        self.rows_bytes = 0
        self.rows_writes = 0
        self.batch: list[str] = []
        self.batch_bytes = 0
        self.chunks = first_chunk

    @staticmethod
    def encode(line: int, fields: dict[str, Any]) -> str:
        if not fields.get("data"):
            # Only strings, lists of strings and None: the C encoder writes them as jsonutil would
            # mean them (``data`` may hold Decimals, which only jsonutil writes exactly).
            return json.dumps({"line": line, "fields": fields}, ensure_ascii=False, separators=(",", ":"))
        return jsonutil.dumps({"line": line, "fields": fields})

    @staticmethod
    def writes(fields: dict[str, Any]) -> int:
        """At most how many records the row's item takes (itself and its tags' index records), so
        that a message's rows fit in the consumer's one transaction (``MAX_ROW_WRITES``)."""
        tags = fields.get("tags")
        return 1 + (min(len(tags), MAX_TAGS) if isinstance(tags, list) else 0)

    def fits(self, text: str, writes: int = 1) -> bool:
        """Whether a row fits in the message being filled (an empty message takes any row)."""
        return not self.rows or (
            self.rows_bytes + len(text.encode("utf-8")) + 1 <= MAX_MESSAGE_BYTES
            and self.rows_writes + writes <= imports.MAX_ROW_WRITES
        )

    def append(self, text: str, writes: int = 1) -> bool:
        """Add an encoded row (``fits`` was checked); True when that completed a message."""
        self.rows.append(text)
        self.rows_bytes += len(text.encode("utf-8")) + 1
        self.rows_writes += writes
        if len(self.rows) >= MAX_ROWS_PER_MESSAGE:
            self.seal()
            return True
        return False

    def add(self, line: int, fields: dict[str, Any]) -> None:
        text = self.encode(line, fields)
        writes = self.writes(fields)
        if not self.fits(text, writes):
            self.seal()
        self.append(text, writes)

    def close(self) -> int:
        """Send what is left; returns the number of messages (chunks) of the whole file."""
        if self.rows:
            self.seal()
        self.flush()
        return self.chunks

    def seal(self) -> None:
        body = f'{self.head},"chunk":{self.chunks},"rows":[{",".join(self.rows)}]}}'
        self.chunks += 1
        self.rows, self.rows_bytes, self.rows_writes = [], 0, 0
        size = len(body.encode("utf-8"))
        if self.batch and (len(self.batch) >= MAX_BATCH_MESSAGES or self.batch_bytes + size > MAX_BATCH_BYTES):
            self.flush()
        self.batch.append(body)
        self.batch_bytes += size

    def flush(self) -> None:
        """Send the sealed messages (rows not yet sealed stay)."""
        pending = {str(index): body for index, body in enumerate(self.batch)}
        self.batch, self.batch_bytes = [], 0
        for attempt in range(SEND_ATTEMPTS):
            if not pending:
                return
            response = aws.sqs().send_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": entry_id, "MessageBody": body} for entry_id, body in pending.items()],
            )
            failed = response.get("Failed") or []
            pending = {f["Id"]: pending[f["Id"]] for f in failed}
            if pending:
                time.sleep(dynamo_batch.backoff(attempt))
        if pending:
            raise QueueRefusedError(f"{len(pending)} messages could not be queued")


@dataclass(frozen=True)
class Progress:
    """Pass 2's state at a row boundary: where the next row starts and what came before it."""

    offset: int
    line: int
    chunk: int
    valid: int
    failed: int
    columns: tuple[str, ...] | None
    etag: str
    ids: bool = False

    @classmethod
    def from_record(cls, saved: Mapping[str, Any]) -> Progress:
        columns = saved.get("columns")
        return cls(
            offset=int(saved["offset"]), line=int(saved["line"]), chunk=int(saved["chunk"]),
            valid=int(saved["valid"]), failed=int(saved["failed"]),
            columns=tuple(str(c) for c in columns) if columns is not None else None,
            etag=str(saved["etag"]), ids=bool(saved.get("ids", False)),
        )

    def to_record(self) -> dict[str, Any]:
        return {
            "offset": self.offset, "line": self.line, "chunk": self.chunk, "valid": self.valid,
            "failed": self.failed, "columns": list(self.columns) if self.columns is not None else None,
            "etag": self.etag, "ids": self.ids,
        }

    @property
    def start(self) -> import_parser.Start:
        return import_parser.Start(self.offset, self.line, self.columns)


class IdRegistry:
    """The ids a file gives explicitly, seen so far, on disk (SQLite in a temporary directory).

    A file that uses an id twice gets a row error on the later line, decided here, in file
    order, rather than by whichever queue message happens to be written first. On disk, so memory
    stays bounded however many rows the file has; rows without an id get ids unique by
    construction and are not registered. Between invocations the database travels through S3.
    """

    def __init__(self, bucket: str, key: str, *, restore: bool) -> None:
        self.bucket, self.key = bucket, key
        self.count = 0
        self._directory = tempfile.TemporaryDirectory(prefix="import-ids-")
        self._path = f"{self._directory.name}/ids.db"
        if restore:
            body = aws.s3().get_object(Bucket=bucket, Key=key)["Body"]
            with open(self._path, "wb") as copy:
                shutil.copyfileobj(body, copy, READ_CHUNK_BYTES)
            body.close()
        self._db = sqlite3.connect(self._path, isolation_level=None)
        self._db.executescript(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -2048;"
            "CREATE TABLE IF NOT EXISTS ids (id TEXT PRIMARY KEY, line INTEGER NOT NULL) WITHOUT ROWID; BEGIN;"
        )

    def claim(self, item_id: str, line: int) -> int | None:
        """Register ``item_id`` for ``line``; the earlier line that holds it, if any (a line that
        registered it itself, in an earlier run over the same rows, is not earlier)."""
        inserted = self._db.execute("INSERT OR IGNORE INTO ids VALUES (?, ?)", (item_id, line)).rowcount
        if inserted:
            self.count += 1
            return None
        first: int = self._db.execute("SELECT line FROM ids WHERE id = ?", (item_id,)).fetchone()[0]
        return first if first != line else None

    def file_bytes(self) -> int:
        """The database's size on disk (what it takes of ``/tmp``)."""
        self._db.execute("COMMIT")
        size = os.path.getsize(self._path)
        self._db.execute("BEGIN")
        return size

    def store(self) -> None:
        """Put the database in S3 for the next invocation."""
        self._db.execute("COMMIT")
        with open(self._path, "rb") as data:
            aws.s3().put_object(Bucket=self.bucket, Key=self.key, Body=data)
        self._db.execute("BEGIN")

    def __enter__(self) -> IdRegistry:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._db.close()
        self._directory.cleanup()


class ImportPipeline:
    def __init__(self, settings: Settings, deadline: float | None = None) -> None:
        """``deadline`` (``time.monotonic()``): no new row after it; the rest is continued."""
        self.settings = settings
        self.table = require(settings.table_name, "TABLE_NAME")
        self.bucket = require(settings.bucket_name, "BUCKET_NAME")
        self.deadline = deadline if deadline is not None else deadline_for(None)

    def process_upload(self, bucket: str, key: str) -> str:
        """Handle the storage event of an import file; returns what was done (for the log)."""
        parsed = uploads.parse_import_key(key)
        if parsed is None or bucket != self.bucket:
            return "ignored: not an import key of this stage"
        tenant, import_id = parsed.tenant, parsed.import_id
        record = imports.get(self.table, tenant, import_id)
        if record is None or record.finished:
            uploads.delete(bucket, [key])
            return "removed: no import awaits this file"
        if record.status == "processing" and record.rows_total is not None:
            return "ignored: already processed"
        stored = uploads.head(bucket, key)
        if stored is None:
            return "ignored: the file is gone"
        problem = self._check(record, stored)
        if problem is not None:
            imports.fail(
                self.table, tenant, import_id, detail=problem, line=None, from_status=("pending_upload", "processing")
            )
            return f"failed: {problem}"
        if not self._start(tenant, import_id):
            return "ignored: the import is no longer waiting for its file"
        return self._process(tenant, record, key, stored)

    @staticmethod
    def _check(record: ImportRecord, stored: uploads.StoredObject) -> str | None:
        if stored.size != record.size:
            return f"the uploaded file has {stored.size} bytes, {record.size} were declared"
        expected = IMPORT_CONTENT_TYPES[record.format]
        if uploads.media_type(stored.content_type) != expected:
            return f"the uploaded file is {stored.content_type or 'of no type'}, {expected} was required"
        return None

    def _start(self, tenant: str, import_id: str) -> bool:
        """``pending_upload`` → ``processing``, due (in ``due-index``) at the processing deadline.

        A run for an import already ``processing`` whose rows are not all queued yet (a retry after
        a crash) goes on, keeping the deadline of the first run.
        """
        deadline = clock.now() + timedelta(seconds=self.settings.import_deadline_seconds)
        return imports.start(self.table, tenant, import_id, clock.format_timestamp(deadline))

    def _process(self, tenant: str, record: ImportRecord, key: str, stored: uploads.StoredObject) -> str:
        import_id = record.id
        id_for_line = row_ids(import_id, record.created_at)
        file_format = record.format
        saved = record.parse
        try:
            if saved is None:
                start = self._check_file(file_format, key, stored.etag)
                progress = Progress(start.offset, start.line, 0, 0, 0, start.columns, stored.etag)
            else:
                progress = Progress.from_record(saved)
                if progress.etag != stored.etag:
                    raise import_parser.ImportFileError("the file changed while it was being imported")
        except import_parser.ImportFileError as problem:
            imports.fail(
                self.table, tenant, import_id, detail=problem.detail, line=problem.line, from_status=("processing",)
            )
            return f"failed: {problem.detail}"
        sender = ChunkSender(require(self.settings.queue_url, "QUEUE_URL"), tenant, import_id, progress.chunk)
        with IdRegistry(self.bucket, uploads.import_work_key(tenant, import_id), restore=progress.ids) as registry:
            if progress.offset < stored.size:
                body = uploads.open_stream(self.bucket, key, start=progress.offset, etag=progress.etag)
            else:  # nothing after the header (a range past the end is refused)
                body = io.BytesIO()
            try:
                state, boundary, done = self._queue_rows(tenant, import_id, file_format, body, id_for_line,
                                                         progress, sender, registry)
            finally:
                body.close()
            if not done:
                sender.flush()
                if registry.count or progress.ids:
                    registry.store()
                boundary = replace(boundary, ids=bool(registry.count or progress.ids))
                if not self._save(tenant, import_id, saved, boundary):
                    return "stopped: another run went on from the same checkpoint"
                uploads.copy_onto_itself(self.bucket, key, IMPORT_CONTENT_TYPES[file_format], f"line {boundary.line}")
                return f"continuing from line {boundary.line} in a new invocation ({boundary.chunk} messages so far)"
        chunks = sender.close()
        if progress.ids or registry.count:
            uploads.delete(self.bucket, [uploads.import_work_key(tenant, import_id)])
        if self._set_total(tenant, import_id, state.valid + state.failed, state.failed):
            imports.try_complete(self.table, tenant, import_id)
        return f"queued {state.valid} rows in {chunks} messages, {state.failed} row errors"

    def _check_file(self, file_format: str, key: str, etag: str) -> import_parser.Start:
        body = uploads.open_stream(self.bucket, key, etag=etag)
        try:
            return import_parser.check(file_format, _chunks(body))
        finally:
            body.close()

    def _queue_rows(
        self, tenant: str, import_id: str, file_format: str, body: Any, id_for_line: Callable[[int], str],
        progress: Progress, sender: ChunkSender, registry: IdRegistry,
    ) -> tuple[Progress, Progress, bool]:
        """Pass 2 from ``progress``: (the state after the last row read, the last state whose rows
        are all in sealed messages, whether the file was read to its end)."""
        boundary = progress
        # The state after the last row read, as plain locals (a dataclass per row costs more than
        # parsing the row); a ``Progress`` is made only at message boundaries.
        offset, line, valid, failed = progress.offset, progress.line, progress.valid, progress.failed

        def at(chunk: int) -> Progress:
            return Progress(offset, line, chunk, valid, failed, progress.columns, progress.etag, progress.ids)

        errors: list[tuple[int, str]] = []
        done = True
        for row in import_parser.rows(file_format, _chunks(body), id_for_line, progress.start):
            # Out of time, and at least one message further than where this run began (so every
            # run makes progress, however short its budget): the rest is for the continuation.
            if boundary.offset > progress.offset and time.monotonic() > self.deadline:
                done = False
                break
            text: str | None = None
            error = row.error
            if row.fields is not None:
                item_id = str(row.fields["id"])
                first = registry.claim(item_id, row.line) if item_id != id_for_line(row.line) else None
                if first is not None:
                    error = f"id '{item_id}' is already used on line {first}"
                else:
                    try:
                        text = sender.encode(row.line, row.fields)
                    except Exception as exc:  # one row's surprise is that row's error
                        error = import_parser.unexpected(row.line, exc)
            if text is None:
                errors.append((row.line, str(error)))
                if len(errors) >= ERROR_WRITE_BATCH:
                    imports.put_row_errors(self.table, tenant, import_id, errors)
                    errors = []
                offset, line, failed = row.end, row.next_line, failed + 1
                if not sender.rows:
                    boundary = at(sender.chunks)
                continue
            writes = sender.writes(row.fields or {})
            if not sender.fits(text, writes):
                sender.seal()
                boundary = at(sender.chunks)  # before this row: it starts the next message
            offset, line, valid = row.end, row.next_line, valid + 1
            if sender.append(text, writes):
                boundary = at(sender.chunks)
        state = at(sender.chunks)
        if errors:
            imports.put_row_errors(self.table, tenant, import_id, errors)
        return state, boundary, done

    def _save(self, tenant: str, import_id: str, saved: Mapping[str, Any] | None, progress: Progress) -> bool:
        """Write the checkpoint, if the one this run started from is still the latest."""
        return imports.save_checkpoint(self.table, tenant, import_id, progress.to_record(), saved)

    def _set_total(self, tenant: str, import_id: str, total: int, failed: int) -> bool:
        """Record ``rows_total`` and count the parser's row errors, once per import."""
        return imports.set_total(self.table, tenant, import_id, total, failed)
