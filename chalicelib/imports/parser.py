"""Streaming parsers for import files: bytes in, validated rows or row errors out, line by line.

Memory stays bounded whatever the file size: bytes are decoded incrementally, split into lines
as they arrive, and each row is validated and handed on before the next is read. The only
buffers are one partial line (at most ``MAX_LINE_CHARS``) and, for CSV, one record (at most
``MAX_RECORD_CHARS``).

Line numbers are 1-based physical lines of the file (LF or CRLF endings). A CSV record that spans
lines (a quoted field with line breaks) is reported at the line where it starts. Blank lines are
skipped but still counted.

Each row is validated with ``ItemCreate``, the model that validates ``POST /items``, so a row is
accepted exactly when the same object would be accepted by the API.

Whatever goes wrong inside one row (a validator that raises something unexpected, a number
Python refuses to convert, a date that overflows) is that row's error, reported at its line: a
row can never stop the rows after it. Only file-level problems (``ImportFileError``) stop a file.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from chalicelib.items.models import ItemCreate
from chalicelib.items.rules import to_field_errors
from chalicelib.util import clock, jsonutil
from chalicelib.util.observability import logger

MAX_LINE_CHARS = 1024 * 1024
# One CSV record (a quoted field may span lines) holds at most this many characters; a longer one
# is a row error at the line where it starts, and its remaining lines are skipped without being
# kept, so memory stays bounded whatever the file holds.
MAX_RECORD_CHARS = 1024 * 1024
CSV_COLUMNS = ("name", "id", "description", "tags", "data", "expires_at")
TAG_SEPARATOR = "|"


class ImportFileError(Exception):
    """The file as a whole cannot be imported (encoding, header, ...); nothing is imported."""

    def __init__(self, detail: str, line: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.line = line


@dataclass(frozen=True)
class Row:
    """One data row: ``fields`` (a create body with its id) when valid, else ``error``."""

    line: int
    fields: dict[str, Any] | None = None
    error: str | None = None
    # Where the next row starts: a byte offset into the stream, and its line number.
    end: int = 0
    next_line: int = 0


@dataclass(frozen=True)
class Start:
    """Where to parse from: the file's start, or a row boundary recorded by an earlier run."""

    offset: int = 0
    line: int = 1
    columns: tuple[str, ...] | None = None  # CSV: the header, when starting after it


class Lines:
    """UTF-8 text lines with their line endings, counting the bytes of the lines handed out.

    A leading BOM is dropped when the stream is the file's start. ``consumed`` is the number of
    bytes of every line handed out so far, so a caller that has used up a row knows where the next
    row starts in the file (``Start.offset``).
    """

    def __init__(self, chunks: Iterable[bytes], *, at_file_start: bool = True, first_line: int = 1) -> None:
        self._chunks = chunks
        self._at_file_start = at_file_start
        self._first_line = first_line
        self.consumed = 0
        self._lines = self._generate()

    def __iter__(self) -> Iterator[str]:
        return self._lines  # one pass: whoever reads next continues where the last reader stopped

    def _generate(self) -> Iterator[str]:
        decoder = codecs.getincrementaldecoder("utf-8-sig" if self._at_file_start else "utf-8")()
        before = self._first_line - 1
        newlines_before = before
        pending = ""
        lines_out = before
        head = b"" if self._at_file_start else codecs.BOM_UTF8 * 2  # the BOM's bytes count, once
        for chunk in self._chunks:
            if len(head) < len(codecs.BOM_UTF8):
                head += chunk[: len(codecs.BOM_UTF8) - len(head)]
                if head == codecs.BOM_UTF8:
                    self.consumed += len(head)
            try:
                text = decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                line = newlines_before + bytes(exc.object[: exc.start]).count(b"\n") + 1
                raise ImportFileError(f"the file is not valid UTF-8: invalid bytes on line {line}", line) from exc
            newlines_before += chunk.count(b"\n")
            pending += text
            if "\n" in text:
                parts = pending.split("\n")
                pending = parts.pop()
                for part in parts:
                    lines_out += 1
                    line_text = part + "\n"
                    self.consumed += len(line_text) if line_text.isascii() else len(line_text.encode("utf-8"))
                    yield line_text
            if len(pending) > MAX_LINE_CHARS:
                raise ImportFileError(f"line {lines_out + 1} is longer than {MAX_LINE_CHARS} characters", lines_out + 1)
        try:
            pending += decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            line = newlines_before + 1
            raise ImportFileError(f"the file is not valid UTF-8: invalid bytes on line {line}", line) from exc
        if pending:
            self.consumed += len(pending) if pending.isascii() else len(pending.encode("utf-8"))
            yield pending


def decoded_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """UTF-8 text lines with their line endings; a leading BOM is dropped."""
    return iter(Lines(chunks))


def _validate(line: int, body: dict[str, Any], id_for_line: Callable[[int], str]) -> Row:
    try:
        model = ItemCreate.model_validate(body)
    except ValidationError as exc:
        return Row(line, error=describe(to_field_errors(exc)))
    fields: dict[str, Any] = {
        "id": model.id or id_for_line(line),
        "name": model.name,
        "tags": model.tags,
        "data": model.data,
    }
    if model.description is not None:
        fields["description"] = model.description
    if model.expires_at is not None:
        fields["expires_at"] = clock.format_timestamp(model.expires_at)
    return Row(line, fields=fields)


def _one_line(exc: Exception) -> str:
    """A JSON error inside one line: the column is what helps (the line is the row's)."""
    return str(exc).replace(" at line 1 column", " at column")


def unexpected(line: int, exc: Exception) -> str:
    """The row error of an exception nobody foresaw (logged, with its traceback, for a fix)."""
    logger().exception("import row failed unexpectedly", line=line, error=type(exc).__name__)
    return f"could not be processed ({type(exc).__name__})"


def describe(errors: list[dict[str, str]]) -> str:
    return "; ".join(f"{e['pointer'] or '/'} {e['detail']}" for e in errors)


def jsonl_rows(lines: Lines, id_for_line: Callable[[int], str], start: Start = Start()) -> Iterator[Row]:
    """One JSON object per non-blank line, with the fields of a create body."""
    for number, line in enumerate(lines, start.line):
        if not line.strip():
            continue
        try:
            row = _jsonl_row(number, line, id_for_line)
        except Exception as exc:  # one row's surprise is that row's error
            row = Row(number, error=unexpected(number, exc))
        yield Row(row.line, row.fields, row.error, start.offset + lines.consumed, number + 1)


def _jsonl_row(number: int, line: str, id_for_line: Callable[[int], str]) -> Row:
    try:
        value = jsonutil.loads(line.rstrip("\r\n"))
    except jsonutil.MalformedJSON as exc:
        return Row(number, error=_one_line(exc))
    if not isinstance(value, dict):
        return Row(number, error="must be a JSON object")
    return _validate(number, value, id_for_line)


class _RecordTooLongError(Exception):
    """The CSV record being read passed ``MAX_RECORD_CHARS``."""


class _CountingLines:
    """Feeds lines to ``csv.reader`` while counting them (to number records exactly) and measuring
    the record being read (to bound it)."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = iter(lines)
        self.count = 0
        self._record_chars = 0
        self._record_quotes = 0

    def __iter__(self) -> _CountingLines:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.count += 1
        self._record_chars += len(line)
        self._record_quotes += line.count('"')
        if self._record_chars > MAX_RECORD_CHARS:
            raise _RecordTooLongError()
        return line

    def start_record(self) -> None:
        self._record_chars = 0
        self._record_quotes = 0

    def skip_rest_of_record(self) -> None:
        """Pass over the lines of a record abandoned midway, keeping none: the record ends at the
        first line end outside quotes (RFC 4180 doubles a quote inside a quoted field, so an even
        count of quotes so far means outside)."""
        while self._record_quotes % 2:
            try:
                line = next(self._lines)
            except StopIteration:
                return
            self.count += 1
            self._record_quotes += line.count('"')


def _is_blank(record: list[str]) -> bool:
    return not record or (len(record) == 1 and not record[0].strip())


def _header(record: list[str], line: int) -> list[str]:
    columns = [name.strip() for name in record]
    unknown = [c for c in columns if c not in CSV_COLUMNS]
    if unknown:
        raise ImportFileError(
            f"unknown column {unknown[0]!r} in the header on line {line}; allowed: {', '.join(CSV_COLUMNS)}", line
        )
    duplicates = sorted({c for c in columns if columns.count(c) > 1})
    if duplicates:
        raise ImportFileError(f"column {duplicates[0]!r} appears twice in the header on line {line}", line)
    if "name" not in columns:
        raise ImportFileError(f"the header on line {line} has no 'name' column", line)
    return columns


def _csv_body(columns: list[str], record: list[str]) -> dict[str, Any] | str:
    """The create body of a CSV record, or an error text."""
    if len(record) != len(columns):
        return f"has {len(record)} fields, the header has {len(columns)}"
    body: dict[str, Any] = {}
    for column, value in zip(columns, record, strict=True):
        if column == "name":
            body["name"] = value
        elif column == "tags":
            body["tags"] = value.split(TAG_SEPARATOR) if value.strip() else []
        elif not value.strip():
            continue  # an empty cell is an absent optional field
        elif column == "data":
            try:
                body["data"] = jsonutil.loads(value)
            except jsonutil.MalformedJSON as exc:
                return f"/data {_one_line(exc)}"
        else:
            body[column] = value
    return body


def csv_header(lines: Lines) -> tuple[tuple[str, ...], int]:
    """The CSV header and the line after it; raises ``ImportFileError`` for a bad or missing one."""
    for row in _csv_records(lines, lambda _line: "", Start(), header_only=True):
        return tuple(row.fields["columns"] if row.fields else ()), row.next_line
    raise ImportFileError("the file has no header row", None)  # pragma: no cover - raised inside


def csv_rows(lines: Lines, id_for_line: Callable[[int], str], start: Start = Start()) -> Iterator[Row]:
    """RFC 4180 with a header row; columns as ``CSV_COLUMNS``; ``tags`` separated by ``|``."""
    return _csv_records(lines, id_for_line, start, header_only=False)


def _csv_records(lines: Lines, id_for_line: Callable[[int], str], start: Start, *, header_only: bool) -> Iterator[Row]:
    counted = _CountingLines(lines)
    reader = csv.reader(counted, strict=True)
    columns: list[str] | None = list(start.columns) if start.columns is not None else None
    while True:
        first = start.line + counted.count
        counted.start_record()
        try:
            record = next(reader)
        except StopIteration:
            break
        except _RecordTooLongError as exc:
            counted.skip_rest_of_record()
            if columns is None:
                raise ImportFileError(f"the header on line {first} is longer than {MAX_RECORD_CHARS} characters", first) from exc
            yield _at(Row(first, error=f"is longer than {MAX_RECORD_CHARS} characters"), lines, counted, start)
            continue
        except csv.Error as exc:
            counted.skip_rest_of_record()
            if columns is None:
                raise ImportFileError(f"the header on line {first} is not valid CSV: {exc}", first) from exc
            yield _at(Row(first, error=f"is not valid CSV: {exc}"), lines, counted, start)
            continue
        if _is_blank(record):
            continue
        if columns is None:
            columns = _header(record, first)
            if header_only:
                yield _at(Row(first, fields={"columns": columns}), lines, counted, start)
                return
            continue
        try:
            body = _csv_body(columns, record)
            row = Row(first, error=body) if isinstance(body, str) else _validate(first, body, id_for_line)
        except Exception as exc:  # one row's surprise is that row's error
            row = Row(first, error=unexpected(first, exc))
        yield _at(row, lines, counted, start)
    if columns is None:
        raise ImportFileError("the file has no header row", None)


def _at(row: Row, lines: Lines, counted: _CountingLines, start: Start) -> Row:
    return Row(row.line, row.fields, row.error, start.offset + lines.consumed, start.line + counted.count)


def rows(
    file_format: str, chunks: Iterable[bytes], id_for_line: Callable[[int], str], start: Start = Start()
) -> Iterator[Row]:
    """The rows of an import file (or of its rest, from ``start``, which ``chunks`` begin at);
    raises ``ImportFileError`` when the file cannot be imported."""
    lines = Lines(chunks, at_file_start=start.offset == 0, first_line=start.line)
    if file_format == "csv":
        return csv_rows(lines, id_for_line, start)
    return jsonl_rows(lines, id_for_line, start)


def check(file_format: str, chunks: Iterable[bytes]) -> Start:
    """The file-level checks over the whole file (UTF-8, line lengths, the CSV header), at the
    speed of decoding: no row is parsed. Returns where the rows start."""
    lines = Lines(chunks)
    start = Start()
    if file_format == "csv":
        columns, next_line = csv_header(lines)
        start = Start(offset=lines.consumed, line=next_line, columns=columns)
    for _ in lines:
        pass
    return start
