"""The request line takes a shorter road than other log lines (chalicelib/util/observability.py):
its text must stay the one Powertools' own formatter writes for the same record, and it must stay
a record of the service's logger, so LOG_LEVEL (and Powertools' debug sampling, which lowers the
level) decides whether it is written."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from chalicelib.util import observability

FIELDS: dict[str, Any] = {"request_id": "4f1c5d8e-1111-2222-3333-444455556666", "trace_id": None, "tenant": "acme",
                          "method": "GET", "route": "/items/{item_id}", "status": 200, "latency_ms": 1.23}


class Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def kept() -> Iterator[list[logging.LogRecord]]:
    """The records the service's logger handles, as any handler of it receives them."""
    keep = Keep()
    target = logging.getLogger(observability.logger().service)
    target.addHandler(keep)
    level = target.level
    target.setLevel(logging.INFO)
    try:
        yield keep.records
    finally:
        target.setLevel(level)
        target.removeHandler(keep)


def powertools_formatter() -> LambdaPowertoolsFormatter:
    """The formatter Powertools' Logger builds when given none, with the service's options."""
    return LambdaPowertoolsFormatter(use_rfc3339=True, service=observability.logger().service,
                                     sampling_rate=observability.logger().sampling_rate)


def request_line(records: list[logging.LogRecord], **fields: Any) -> logging.LogRecord:
    observability.request_line(**{**FIELDS, **fields})
    (record,) = [r for r in records if r.msg == observability.REQUEST]
    records.clear()
    return record


def test_the_service_logger_writes_with_the_fast_formatter() -> None:
    assert isinstance(observability.logger().registered_formatter, observability._request_line_formatter())


@pytest.mark.parametrize("fields", [
    {},
    {"tenant": None, "route": None, "status": 404},
    {"trace_id": "1-67891233-abcdef012345678912345678", "status": 503, "latency_ms": 5012.0},
    {"tenant": "tenant-é", "route": "/items/{item_id}/attachments/{attachment_id}", "method": "DELETE", "status": 204},
])
def test_the_request_line_is_what_powertools_writes(kept, fields) -> None:
    record = request_line(kept, **fields)
    ours = observability.logger().registered_formatter.format(record)
    assert ours == powertools_formatter().format(record)
    line = json.loads(ours)
    assert list(line)[:5] == ["level", "location", "message", "timestamp", "service"]
    assert line["location"].startswith("request_line:") and line["message"] == "request"
    assert {k: v for k, v in {**FIELDS, **fields}.items() if v is not None}.items() <= line.items()


def test_with_lambdas_trace_header_and_keys_appended(kept, monkeypatch) -> None:
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
    record = request_line(kept, trace_id="1-5759e988-bd862e3fe1be46a994272793")
    formatter, reference = observability.logger().registered_formatter, powertools_formatter()
    assert formatter.format(record) == reference.format(record)
    assert json.loads(formatter.format(record))["xray_trace_id"] == "1-5759e988-bd862e3fe1be46a994272793"
    formatter.append_keys(cold_start=False)
    reference.append_keys(cold_start=False)
    try:
        assert formatter.format(record) == reference.format(record)
        assert '"cold_start":false' in formatter.format(record)
    finally:
        formatter.remove_keys(["cold_start"])


def test_a_record_changed_by_another_handler_formats_the_same(kept) -> None:
    record = request_line(kept)
    logging.Formatter("%(asctime)s %(message)s").format(record)  # sets record.message and record.asctime
    assert observability.logger().registered_formatter.format(record) == powertools_formatter().format(record)


def test_other_lines_and_thread_local_keys_go_powertools_way(kept) -> None:
    formatter = observability.logger().registered_formatter
    observability.logger().info("dependency unavailable", error="throttled", request_id="r-1")
    (other,) = kept
    assert formatter.format(other) == powertools_formatter().format(other)
    record = request_line(kept)
    formatter.thread_safe_append_keys(correlation_id="c-1")
    try:
        line = formatter.format(record)
        assert json.loads(line)["correlation_id"] == "c-1"
    finally:
        formatter.thread_safe_clear_keys()


def test_log_level_decides(kept) -> None:
    logging.getLogger(observability.logger().service).setLevel(logging.WARNING)
    observability.request_line(**FIELDS)
    assert kept == []
    logging.getLogger(observability.logger().service).setLevel(logging.DEBUG)  # as Powertools' sampling does
    observability.request_line(**FIELDS)
    assert [r.msg for r in kept] == [observability.REQUEST]


def test_the_request_line_skips_the_generic_formatter(kept, monkeypatch) -> None:
    record = request_line(kept)
    expected = powertools_formatter().format(record)

    def generic(*_args: Any) -> str:
        raise AssertionError("the request line went the generic way")

    monkeypatch.setattr(LambdaPowertoolsFormatter, "format", generic)
    assert observability.logger().registered_formatter.format(record) == expected
