"""The streaming import parsers: exact line numbers, CSV corner cases, bounded memory."""

from __future__ import annotations

import tracemalloc
from decimal import Decimal

import pytest

from chalicelib.imports import parser as import_parser
from chalicelib.imports.parser import ImportFileError, decoded_lines


def ids(line: int) -> str:
    return f"row-{line}"


def parse(file_format: str, data: bytes, chunk: int = 7):
    chunks = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    return list(import_parser.rows(file_format, chunks, ids))


def outcome(rows):
    return [(r.line, r.fields["name"] if r.fields else None, r.error) for r in rows]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 4096])
def test_decoding_is_independent_of_chunk_boundaries(chunk):
    text = "\ufeffé€😀\r\nsecond\n\nlast"
    data = text.encode("utf-8")
    lines = list(decoded_lines(data[i : i + chunk] for i in range(0, len(data), chunk)))
    assert lines == ["é€😀\r\n", "second\n", "\n", "last"]


@pytest.mark.parametrize("chunk", [1, 5, 4096])
def test_invalid_utf8_names_its_line(chunk):
    data = b"a\nb\n\xe9t\xe9\nc\n"
    with pytest.raises(ImportFileError) as raised:
        list(decoded_lines(data[i : i + chunk] for i in range(0, len(data), chunk)))
    assert raised.value.line == 3
    assert "not valid UTF-8" in raised.value.detail


def test_truncated_utf8_at_the_end_is_invalid():
    with pytest.raises(ImportFileError) as raised:
        list(decoded_lines([b"ok\n", b"\xe2\x82"]))
    assert raised.value.line == 2


def test_an_endless_line_is_a_file_problem(monkeypatch):
    monkeypatch.setattr(import_parser, "MAX_LINE_CHARS", 100)
    with pytest.raises(ImportFileError) as raised:
        list(decoded_lines([b"short\n", b"x" * 60, b"x" * 60]))
    assert raised.value.line == 2


def test_jsonl_rows_errors_and_blank_lines():
    data = (
        b'{"name": "first", "data": {"n": 0.1, "big": 12345678901234567890}}\n'
        b"\n"
        b"   \r\n"
        b'{"name": ""}\n'
        b"[1, 2]\n"
        b'{"name": "x", "oops": \n'
        b'{"name": "x", "version": 3}\n'
        b'{"id": "given", "name": " padded ", "tags": ["a", "a", " b "], "expires_at": "2999-01-01T01:00:00+01:00"}\r\n'
        b'{"name": "last, no newline"}'
    )
    rows = parse("jsonl", data)
    assert outcome(rows) == [
        (1, "first", None),
        (4, None, "/name must not be blank"),
        (5, None, "must be a JSON object"),
        (6, None, "malformed JSON: Expecting value at column 23"),
        (7, None, "/version is read-only"),
        (8, "padded", None),
        (9, "last, no newline", None),
    ]
    assert rows[0].fields == {
        "id": "row-1",
        "name": "first",
        "tags": [],
        "data": {"n": Decimal("0.1"), "big": 12345678901234567890},
    }
    assert rows[5].fields == {
        "id": "given",
        "name": "padded",
        "tags": ["a", "b"],
        "data": {},
        "expires_at": "2999-01-01T00:00:00.000Z",
    }


def test_jsonl_bom_is_allowed():
    assert outcome(parse("jsonl", '\ufeff{"name": "é"}\n'.encode())) == [(1, "é", None)]


def test_csv_rows_with_bom_crlf_quotes_multiline_and_blank_lines():
    data = (
        "\ufeffname,id,description,tags,data,expires_at\r\n"
        "Plain,,,,,\r\n"
        "\r\n"
        '"Quoted, with comma",q1,"line one\r\nline two\r\nline three",a|b|a,"{""k"": 1.50}",\r\n'
        ",,,,,\r\n"
        "After multi,,,,not json,\r\n"
        "Too,few\r\n"
        '"Multi\nline name",,,,,2999-01-01T00:00:00Z\r\n'
        "Tags blank,,, | ,,\r\n"
        "Last,,,x,,\r\n"
    ).encode()
    rows = parse("csv", data)
    assert outcome(rows) == [
        (2, "Plain", None),
        (4, "Quoted, with comma", None),
        (7, None, "/name must not be blank"),
        (8, None, "/data malformed JSON: Expecting value at column 1"),
        (9, None, "has 2 fields, the header has 6"),
        (10, "Multi\nline name", None),
        (12, None, "/tags/0 must not be blank; /tags/1 must not be blank"),
        (13, "Last", None),
    ]
    assert rows[1].fields == {
        "id": "q1",
        "name": "Quoted, with comma",
        "description": "line one\r\nline two\r\nline three",
        "tags": ["a", "b"],
        "data": {"k": Decimal("1.50")},
    }
    assert rows[0].fields == {"id": "row-2", "name": "Plain", "tags": [], "data": {}}


def test_csv_columns_may_come_in_any_order_and_subset():
    rows = parse("csv", b"tags,name\nx|y,Named\n")
    assert rows[0].fields == {"id": "row-2", "name": "Named", "tags": ["x", "y"], "data": {}}


def test_csv_malformed_quoting_is_a_row_error_at_its_line():
    rows = parse("csv", b'name,description\nok,fine\nbad,"unterminated\nstill inside\n')
    assert outcome(rows)[0] == (2, "ok", None)
    assert rows[1].line == 3
    assert rows[1].error.startswith("is not valid CSV")


def test_csv_blank_lines_before_the_header():
    assert outcome(parse("csv", b"\r\n\r\nname\r\nA\r\n")) == [(4, "A", None)]


@pytest.mark.parametrize(
    ("data", "line", "message"),
    [
        (b"name,colour\nA,red\n", 1, "unknown column 'colour' in the header on line 1"),
        (b"\nname,name\nA,B\n", 2, "column 'name' appears twice in the header on line 2"),
        (b"id,description\nx,y\n", 1, "the header on line 1 has no 'name' column"),
        (b"", None, "the file has no header row"),
        (b"\r\n \r\n", None, "the file has no header row"),
        (b'"name\n', 1, "the header on line 1 is not valid CSV"),
    ],
)
def test_csv_file_problems(data, line, message):
    with pytest.raises(ImportFileError) as raised:
        parse("csv", data)
    assert raised.value.line == line
    assert raised.value.detail.startswith(message)


def test_header_only_and_empty_jsonl_have_no_rows():
    assert parse("csv", b"name,tags\r\n") == []
    assert parse("jsonl", b"") == []
    assert parse("jsonl", b"\n\n") == []


def _big_csv(rows: int):
    yield b"name,description,tags,data\n"
    line = b'"Row name",' + b"d" * 200 + b',a|b,"{""n"": 1}"\n'
    batch = line * 1000
    for _ in range(rows // 1000):
        yield batch


def test_memory_stays_bounded_however_large_the_file():
    tracemalloc.start()
    try:
        count = 0
        for row in import_parser.rows("csv", _big_csv(20_000), ids):  # ~4.6 MB of CSV: more than the bound
            assert row.fields is not None
            count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 20_000
    assert peak < 3 * 1024 * 1024


def test_an_overlong_csv_record_is_a_row_error_with_bounded_memory():
    """Many short lines inside quotes make one record; past MAX_RECORD_CHARS it is a row error at
    the line where it starts, the rest of it is skipped unkept, and the next row parses normally."""
    huge_lines = 100_000
    fields = ",".join(['"' + "x" * 61 + '\n"'] * huge_lines)  # 6.5 M characters over 100 K lines of 64
    data = ("name,description\nbefore,\n" + f'"huge",{fields}\n' + "after,\n").encode()
    tracemalloc.start()
    try:
        rows = parse("csv", data, chunk=256 * 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outcome(rows) == [
        (2, "before", None),
        (3, None, f"is longer than {import_parser.MAX_RECORD_CHARS} characters"),
        (3 + huge_lines + 1, "after", None),
    ]
    # The chunks of the file (6.5 MB, held by parse()) and a working set bounded by the record limit
    # (about 3.5 MB); reading the whole record would need about twice the file again.
    assert peak < len(data) + 6 * 1024 * 1024, peak


def test_after_a_malformed_csv_record_the_parser_resumes_at_the_next_record():
    """A quoted field over csv's own field limit: the rest of that record is not read as rows."""
    inner = "\n".join(["looks,like a row"] * 20_000)  # 340 K characters inside one quoted field
    data = ("name,description\n" + f'big,"{inner}"\n' + "after,\n").encode()
    rows = parse("csv", data, chunk=64 * 1024)
    assert [(r.line, r.fields["name"] if r.fields else None) for r in rows] == [(2, None), (20_002, "after")]
    assert rows[0].error.startswith("is not valid CSV: field larger than field limit")


@pytest.mark.parametrize(
    ("file_format", "text"),
    [
        ("csv", '\ufeffname,description\r\nA,"x\r\ny"\r\n\r\nB é,\r\n"bad"x,\r\nC,\r\n'),
        ("jsonl", '\ufeff{"name":"a"}\n\n{"name":"é"}\r\nnot json\n{"name":"c"}'),
        ("csv", "name\nA\nB"),
    ],
)
@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 4096])
def test_parsing_resumed_at_any_row_boundary_gives_the_rest_of_the_rows(file_format, text, chunk):
    """What a continuation relies on: ``Row.end``/``next_line`` and ``check``'s start are exact."""

    def key(rows):
        return [(r.line, r.fields, r.error, r.end, r.next_line) for r in rows]

    data = text.encode()
    full = parse(file_format, data, chunk)
    start = import_parser.check(file_format, [data[i : i + chunk] for i in range(0, len(data), chunk)])
    assert key(import_parser.rows(file_format, [data[start.offset :]], ids, start)) == key(full)
    for index, row in enumerate(full):
        resumed = import_parser.Start(row.end, row.next_line, start.columns)
        rest = list(import_parser.rows(file_format, [data[row.end :]], ids, resumed))
        assert key(rest) == key(full[index + 1 :])
