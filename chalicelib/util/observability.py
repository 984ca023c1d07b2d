"""Structured logs and traces: one JSON line per request, nothing secret in any line, and the trace.

The line carries request id, trace id, tenant, method, route, status and latency; never the API
key, a header or a body. Metrics leave the tenant out: ``request_metrics`` has no tenant to give.
Powertools' Logger writes the JSON; its service name differs from the Chalice app name, or
Chalice's logger and this one would both print every line.

The request line is written once per request, so it takes a shorter road than other lines
(``request_line``, ``RequestLineFormatter``): about 15 µs instead of 50-65 µs through
``Logger.info`` and Powertools' generic formatter (docs/PERFORMANCE.md). It is still a log record
of the same logger, at INFO, through the same handler and filters, so LOG_LEVEL and Powertools'
debug sampling apply as to any line; and its text is the one Powertools' formatter writes for the
same record, which a unit test checks.

Traces: every deployed function runs with X-Ray active tracing (``"xray": true`` in
.chalice/config.json). Lambda records each invocation's segment and hands the trace header to the
function (``_X_AMZN_TRACE_ID``; API Gateway forwards it as ``X-Amzn-Trace-Id`` too). The trace id
goes into the request's log line and into its problem document, so one id leads from a client's
error to its trace.

Subsegments for DynamoDB, S3 and SQS calls need the X-Ray SDK, which costs cold start (about
130-300 ms of imports, docs/PERFORMANCE.md). They are on where the stage sets
``TRACE_AWS_CALLS=true`` (.chalice/config.json): then each call's subsegment carries the request
id and the route template as annotations, never a tenant, key or id of the data.
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import os
import sys
from typing import Any

from chalicelib.util import metrics

REQUEST = "request"  # the request line's message


@functools.cache
def logger() -> Any:
    from aws_lambda_powertools import Logger

    return Logger(service="items-service", level=os.environ.get("LOG_LEVEL", "INFO"),
                  logger_formatter=_request_line_formatter()(use_rfc3339=True))


def request_line(**fields: Any) -> None:
    """The request's log line: ``logger().info("request", **fields)``, without its generic steps.

    The record is made here rather than by ``Logger.info`` (which looks up the caller's frame and
    copies the fields twice); its location is this function, as it was with ``Logger.info``.
    """
    target = logging.getLogger(logger().service)
    if target.isEnabledFor(logging.INFO):
        target.handle(target.makeRecord(target.name, logging.INFO, __file__, sys._getframe().f_lineno, REQUEST, (),
                                        None, "request_line", fields))


def request_metrics(route: str | None, method: str, status: int, latency_ms: float, body: Any) -> None:
    """The API family for one request, and its problem type when it failed (``util/metrics.py``)."""
    dimensions = {"Route": route or "unmatched", "Method": method}
    metrics.record(metrics.API, {"Requests": 1, "Latency": latency_ms, "ClientErrors": int(400 <= status < 500),
                                 "ServerErrors": int(status >= 500)}, **dimensions)
    if status >= 400:
        metrics.record(metrics.PROBLEMS, {"Problems": 1}, ProblemType=problem_type(body), **dimensions)


def problem_type(body: Any) -> str:
    """The slug of a problem document's ``type`` (``/problems/not-found`` -> ``not-found``)."""
    try:
        kind = json.loads(body).get("type") if isinstance(body, str | bytes) else None
    except (ValueError, AttributeError):
        kind = None
    return str(kind).rsplit("/", 1)[-1] if isinstance(kind, str) and kind else "unknown"


@functools.cache
def _request_line_formatter() -> type:
    """``LambdaPowertoolsFormatter`` with a fast path for the request line (built on first use:
    Powertools is imported by the first line logged, as before)."""
    from aws_lambda_powertools.logging.formatter import RESERVED_LOG_ATTRS, LambdaPowertoolsFormatter

    reserved = frozenset(RESERVED_LOG_ATTRS)
    # The standard keys' templates, as Powertools' formatter fills them from a record.
    templates = {"level": "%(levelname)s", "location": "%(funcName)s:%(lineno)d", "timestamp": "%(asctime)s"}

    class RequestLineFormatter(LambdaPowertoolsFormatter):  # type: ignore[misc]
        """Writes the request line as ``LambdaPowertoolsFormatter.format`` does, step for step, less
        its generic work: no copy of the record's attributes, no ``%`` templates, no attempt to
        decode the message as JSON. Any other record, or a formatter whose keys were changed from
        the standard ones (``append_keys`` with a template, thread-local keys), goes the generic way.
        """

        def format(self, record: logging.LogRecord) -> str:
            if (record.msg != REQUEST or record.args or record.exc_info or record.stack_info
                    or self.thread_safe_get_current_keys()):
                return str(super().format(record))
            line: dict[str, Any] = {}
            for key, value in self.log_format.items():
                if not value or key not in reserved:
                    line[key] = value
                elif templates.get(key) != value:
                    return str(super().format(record))
                elif key == "level":
                    line[key] = record.levelname
                elif key == "location":
                    line[key] = f"{record.funcName}:{record.lineno}"
                else:
                    line[key] = self.formatTime(record)
            line.update({k: v for k, v in record.__dict__.items() if k not in reserved})
            line["message"] = record.msg
            for key in ("exception", "exception_name", "exception_notes"):
                line[key] = line.get(key)
            if self.serialize_stacktrace:
                line["stack_trace"] = None
            line["xray_trace_id"] = self._get_latest_trace_id()
            return str(self.serialize(log={k: v for k, v in line.items() if v is not None}))

    return RequestLineFormatter


# -- traces ----------------------------------------------------------------------------------------

TRACE_ENV = "_X_AMZN_TRACE_ID"
SETTING = "TRACE_AWS_CALLS"

# What each AWS call's subsegment is annotated with: set per request by the API's middleware.
call_annotations: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("trace_annotations", default={})  # noqa: B039 - read only
current_trace_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("trace_id", default=None)


def trace_id(header: str | None = None) -> str | None:
    """The ``Root`` of the invocation's trace header (Lambda's variable, else the request's header)."""
    for raw in (os.environ.get(TRACE_ENV), header):
        for part in (raw or "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == "Root" and value:
                return value
    return None


def aws_calls_traced() -> bool:
    return os.environ.get(SETTING, "").strip().lower() in ("1", "true", "yes")


def instrument(client: Any) -> Any:
    """Subsegments with annotations for ``client``'s calls, where the stage asks for them."""
    if aws_calls_traced() and _patch_botocore():
        client.meta.events.register("before-call", _annotate, unique_id="trace-annotations")
    return client


@functools.cache
def _patch_botocore() -> bool:
    """Patch botocore once; False (said once in the log) when the package lacks the X-Ray SDK."""
    try:
        from aws_xray_sdk.core import patch, xray_recorder
    except ImportError:
        logger().warning("TRACE_AWS_CALLS is on but the package has no aws-xray-sdk: AWS calls are not traced")
        return False
    # Outside Lambda (a script, the local stack without a daemon) a call has no segment to join.
    xray_recorder.configure(context_missing="IGNORE_ERROR")
    patch(("botocore",))
    return True


def _annotate(**_kwargs: Any) -> None:
    """``before-call`` runs inside the call's subsegment, which the SDK opened around it."""
    from aws_xray_sdk.core import xray_recorder

    subsegment = xray_recorder.current_subsegment()
    if subsegment is None:
        return
    for name, value in call_annotations.get().items():
        subsegment.put_annotation(name, value)
