"""From an uploaded import file to queued rows: what the storage-event handler does.

Two passes, so a file-level problem (not UTF-8, bad CSV header, an overlong line) found anywhere
in the file fails the import before a single row is queued ("failed" means nothing imported):

1. stream the object from S3, decode, parse and validate every row, and spool the outcome to a
   temporary file (in memory up to ``SPOOL_MEMORY_BYTES``, then on disk);
2. read the spool back: valid rows go to the work queue with ``SendMessageBatch`` in bounded
   messages (``MAX_ROWS_PER_MESSAGE`` rows, ``MAX_MESSAGE_BYTES``, at most 10 messages and
   ``MAX_BATCH_BYTES`` per call), row errors are stored; then ``rows_total`` is set.

Everything is deterministic for a given file (row ids, chunk numbers), so when the handler is
run again for the same upload (a duplicate event, or Lambda's retry after a crash) it queues the
same chunks, and the consumer applies each chunk once.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import IO, Any

from botocore.exceptions import ClientError

from chalicelib import aws, clock, dynamo_batch, import_parser, imports, jsonutil, uploads
from chalicelib.dynamo import Expression, is_condition_failure
from chalicelib.settings import Settings, require
from chalicelib.upload_models import IMPORT_CONTENT_TYPES

READ_CHUNK_BYTES = 256 * 1024
SPOOL_MEMORY_BYTES = 8 * 1024 * 1024
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


class ChunkSender:
    """Packs rows into bounded messages, and messages into bounded ``SendMessageBatch`` calls."""

    def __init__(self, queue_url: str, tenant: str, import_id: str) -> None:
        self.queue_url = queue_url
        self.head = jsonutil.dumps({"kind": "import_rows", "tenant": tenant, "import_id": import_id})[:-1]
        self.rows: list[str] = []
        self.rows_bytes = 0
        self.batch: list[str] = []
        self.batch_bytes = 0
        self.chunks = 0

    def add(self, line: int, fields: dict[str, Any]) -> None:
        text = jsonutil.dumps({"line": line, "fields": fields})
        size = len(text.encode("utf-8")) + 1
        if self.rows and (len(self.rows) >= MAX_ROWS_PER_MESSAGE or self.rows_bytes + size > MAX_MESSAGE_BYTES):
            self._seal()
        self.rows.append(text)
        self.rows_bytes += size

    def close(self) -> int:
        """Send what is left; returns the number of messages (chunks) of the whole file."""
        if self.rows:
            self._seal()
        self._flush()
        return self.chunks

    def _seal(self) -> None:
        body = f'{self.head},"chunk":{self.chunks},"rows":[{",".join(self.rows)}]}}'
        self.chunks += 1
        self.rows, self.rows_bytes = [], 0
        size = len(body.encode("utf-8"))
        if self.batch and (len(self.batch) >= MAX_BATCH_MESSAGES or self.batch_bytes + size > MAX_BATCH_BYTES):
            self._flush()
        self.batch.append(body)
        self.batch_bytes += size

    def _flush(self) -> None:
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


class IdRegistry:
    """The ids seen so far in one file, on disk (SQLite in a temporary directory).

    A file that uses an id twice gets a row error on the later line, decided here, in file
    order, rather than by whichever queue message happens to be written first. On disk, so memory
    stays bounded however many rows the file has.
    """

    def __init__(self) -> None:
        self._directory = tempfile.TemporaryDirectory(prefix="import-ids-")
        self._db = sqlite3.connect(f"{self._directory.name}/ids.db", isolation_level=None)
        self._db.executescript(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -2048;"
            "CREATE TABLE ids (id TEXT PRIMARY KEY, line INTEGER NOT NULL) WITHOUT ROWID; BEGIN;"
        )

    def claim(self, item_id: str, line: int) -> int | None:
        """Register ``item_id`` for ``line``; the earlier line that holds it, if any."""
        inserted = self._db.execute("INSERT OR IGNORE INTO ids VALUES (?, ?)", (item_id, line)).rowcount
        if inserted:
            return None
        first: int = self._db.execute("SELECT line FROM ids WHERE id = ?", (item_id,)).fetchone()[0]
        return first

    def __enter__(self) -> IdRegistry:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._db.close()
        self._directory.cleanup()


class ImportPipeline:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.table = require(settings.table_name, "TABLE_NAME")
        self.bucket = require(settings.bucket_name, "BUCKET_NAME")

    def process_upload(self, bucket: str, key: str) -> str:
        """Handle the storage event of an import file; returns what was done (for the log)."""
        parsed = uploads.parse_import_key(key)
        if parsed is None or bucket != self.bucket:
            return "ignored: not an import key of this stage"
        tenant, import_id = parsed.tenant, parsed.import_id
        record = imports.get_record(self.table, tenant, import_id)
        if record is None or record["status"] in imports.FINAL:
            uploads.delete(bucket, [key])
            return "removed: no import awaits this file"
        if record["status"] == "processing" and record.get("rows_total") is not None:
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
        return self._process(tenant, record, key)

    @staticmethod
    def _check(record: dict[str, Any], stored: uploads.StoredObject) -> str | None:
        if stored.size != int(record["size"]):
            return f"the uploaded file has {stored.size} bytes, {int(record['size'])} were declared"
        expected = IMPORT_CONTENT_TYPES[record["format"]]
        if uploads.media_type(stored.content_type) != expected:
            return f"the uploaded file is {stored.content_type or 'of no type'}, {expected} was required"
        return None

    def _start(self, tenant: str, import_id: str) -> bool:
        """``pending_upload`` → ``processing``, due (in ``due-index``) at the processing deadline.

        A run for an import already ``processing`` whose rows are not all queued yet (a retry after
        a crash) goes on, keeping the deadline of the first run.
        """
        expr = Expression()
        status = expr.name("status")
        now = clock.now()
        deadline = clock.format_timestamp(now + timedelta(seconds=self.settings.import_deadline_seconds))
        key = imports.record_key(tenant, import_id)
        try:
            aws.dynamodb().update_item(
                TableName=self.table,
                Key=key,
                UpdateExpression=(
                    f"SET {status} = {expr.value('processing')}, {expr.name('updated_at')} = {expr.value(clock.format_timestamp(now))},"
                    f" {expr.name('due_at')} = {expr.value(deadline)}"
                ),
                ConditionExpression=f"{status} = {expr.value('pending_upload')}",
                **expr.kwargs(),
            )
            return True
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
        expr = Expression()
        status = expr.name("status")
        try:
            aws.dynamodb().update_item(
                TableName=self.table,
                Key=key,
                UpdateExpression=f"SET {expr.name('updated_at')} = {expr.value(clock.format_timestamp(now))}",
                ConditionExpression=(
                    f"{status} = {expr.value('processing')} AND attribute_not_exists({expr.name('rows_total')})"
                ),
                **expr.kwargs(),
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def _process(self, tenant: str, record: dict[str, Any], key: str) -> str:
        import_id = str(record["id"])
        created_at = str(record["created_at"])

        def id_for_line(line: int) -> str:
            return imports.row_id(import_id, created_at, line)

        with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES, mode="w+b") as spool:
            body = uploads.open_stream(self.bucket, key)
            try:
                valid, failed = self._parse(record["format"], body, id_for_line, spool)
            except import_parser.ImportFileError as problem:
                imports.fail(
                    self.table, tenant, import_id, detail=problem.detail, line=problem.line, from_status=("processing",)
                )
                return f"failed: {problem.detail}"
            finally:
                body.close()
            spool.seek(0)
            chunks = self._queue(tenant, import_id, spool)
        if self._set_total(tenant, import_id, valid + failed, failed):
            imports.try_complete(self.table, tenant, import_id)
        return f"queued {valid} rows in {chunks} messages, {failed} row errors"

    @staticmethod
    def _parse(file_format: str, body: Any, id_for_line: Any, spool: IO[bytes]) -> tuple[int, int]:
        valid = failed = 0
        with IdRegistry() as registry:
            for row in import_parser.rows(file_format, _chunks(body), id_for_line):
                entry: list[Any]
                if row.fields is None:
                    entry = [row.line, None, row.error]
                elif (first := registry.claim(row.fields["id"], row.line)) is not None:
                    entry = [row.line, None, f"id '{row.fields['id']}' is already used on line {first}"]
                else:
                    entry = [row.line, row.fields]
                try:
                    text = jsonutil.dumps(entry)
                except Exception as exc:  # one row's surprise is that row's error
                    entry = [row.line, None, import_parser.unexpected(row.line, exc)]
                    text = jsonutil.dumps(entry)
                if entry[1] is None:
                    failed += 1
                else:
                    valid += 1
                spool.write(text.encode("utf-8") + b"\n")
        return valid, failed

    def _queue(self, tenant: str, import_id: str, spool: IO[bytes]) -> int:
        sender = ChunkSender(require(self.settings.queue_url, "QUEUE_URL"), tenant, import_id)
        errors: list[tuple[int, str]] = []
        for raw in spool:
            entry = jsonutil.loads(raw)
            if entry[1] is not None:
                sender.add(int(entry[0]), entry[1])
                continue
            errors.append((int(entry[0]), str(entry[2])))
            if len(errors) >= ERROR_WRITE_BATCH:
                imports.put_row_errors(self.table, tenant, import_id, errors)
                errors = []
        if errors:
            imports.put_row_errors(self.table, tenant, import_id, errors)
        return sender.close()

    def _set_total(self, tenant: str, import_id: str, total: int, failed: int) -> bool:
        """Record ``rows_total`` and count the parser's row errors, once per import."""
        expr = Expression()
        rows_total, count, now = expr.name("rows_total"), expr.value(failed), expr.value(clock.now_text())
        try:
            aws.dynamodb().update_item(
                TableName=self.table,
                Key=imports.record_key(tenant, import_id),
                UpdateExpression=(
                    f"SET {rows_total} = {expr.value(total)}, {expr.name('updated_at')} = {now}"
                    f" ADD {expr.name('rows_failed')} {count}, {expr.name('rows_done')} {count}"
                ),
                ConditionExpression=(
                    f"{expr.name('status')} = {expr.value('processing')} AND attribute_not_exists({rows_total})"
                ),
                **expr.kwargs(),
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True
