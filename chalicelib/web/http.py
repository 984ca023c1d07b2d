"""HTTP plumbing shared by every route: bodies, headers, conditional requests, responses.

Nothing here knows about items; it turns requests into validated Python values and Python values
(or ``Problem`` exceptions) into responses.
"""

from __future__ import annotations

import contextvars
import functools
import re
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from chalice import Response  # type: ignore[attr-defined]

from chalicelib.limits import MAX_BODY_BYTES
from chalicelib.problems import PROBLEM_CONTENT_TYPE, PROBLEM_TYPES, SLUG_BY_STATUS, Problem
from chalicelib.store.failures import from_aws_error
from chalicelib.util import jsonutil, observability
from chalicelib.util.observability import logger

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

_IDEMPOTENCY_KEY = re.compile(r"[\x20-\x7e]{1,255}")


def new_request_id(request: Any) -> str:
    context = getattr(request, "context", None) or {}
    request_id = context.get("requestId")
    return str(request_id) if request_id else str(uuid.uuid4())


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    all_headers: dict[str, str | list[str]] = {"Content-Type": JSON}
    if headers:
        all_headers.update(headers)
    return Response(body=jsonutil.dumps(body), status_code=status, headers=all_headers)


def problem_response(problem: Problem) -> Response:
    headers: dict[str, str | list[str]] = {"Content-Type": PROBLEM_CONTENT_TYPE, **problem.headers}
    return Response(
        body=jsonutil.dumps(problem.document(request_id_var.get(), observability.current_trace_id.get())),
        status_code=problem.status,
        headers=headers,
    )


F = TypeVar("F", bound=Callable[..., Response])


def problem_boundary(view: F) -> F:
    """Every exception a view raises ends as a problem document; none escapes as a bare 500."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        try:
            return view(*args, **kwargs)
        except Problem as problem:
            return problem_response(problem)
        except Exception as exc:
            mapped = from_aws_error(exc)
            if mapped is not None:
                logger().warning("dependency unavailable", error=str(exc), request_id=request_id_var.get())
                return problem_response(mapped)
            logger().exception("unhandled error", request_id=request_id_var.get())
            return problem_response(
                Problem("internal-error", f"an unexpected error occurred; quote request id {request_id_var.get()}")
            )

    return wrapper  # type: ignore[return-value]


def as_problem(response: Response) -> Response:
    """Errors produced by Chalice itself (405, 415, unhandled 500) reshaped as problem documents."""
    if response.status_code < 400:
        return response
    headers = {k.lower(): str(v) for k, v in (response.headers or {}).items()}
    if headers.get("content-type", "").startswith(PROBLEM_CONTENT_TYPE):
        return response
    slug = SLUG_BY_STATUS.get(response.status_code) or (
        "internal-error" if response.status_code >= 500 else "bad-request"
    )
    body = response.body if isinstance(response.body, dict) else {}
    detail = str(body.get("Message") or PROBLEM_TYPES[slug][1])
    problem = Problem(slug, detail)
    kept = {k: v for k, v in (response.headers or {}).items() if k.lower() != "content-type"}
    reshaped = problem_response(problem)
    reshaped.headers.update(kept)
    return reshaped


def _media_type(request: Any) -> str:
    content_type = request.headers.get("content-type") or JSON
    return str(content_type).split(";", 1)[0].strip().lower()


def read_json_body(request: Any, accepted: tuple[str, ...] = (JSON,)) -> Any:
    """The parsed JSON body: 415 for another media type, 413 when too large, 400 when malformed."""
    media_type = _media_type(request)
    if media_type not in accepted:
        raise Problem(
            "unsupported-media-type",
            f"Content-Type must be {' or '.join(accepted)}, not {media_type}",
        )
    raw = request.raw_body or b""
    if len(raw) > MAX_BODY_BYTES:
        raise Problem("payload-too-large", f"the body must be at most {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        raise Problem("bad-request", "the request body is empty; a JSON object is required")
    try:
        return jsonutil.loads(raw)
    except jsonutil.MalformedJSON as exc:
        raise Problem("bad-request", str(exc)) from exc


def etag(version: int) -> str:
    return f'"{version}"'


def idempotency_key(request: Any) -> str | None:
    value = request.headers.get("idempotency-key")
    if value is None:
        return None
    if not _IDEMPOTENCY_KEY.fullmatch(value):  # fullmatch: "$" would let a final newline through
        raise Problem(
            "bad-request",
            "Idempotency-Key must be 1-255 printable ASCII characters",
            errors=[{"pointer": "/header/Idempotency-Key", "detail": "must be 1-255 printable ASCII characters"}],
        )
    return str(value)


def query_params(request: Any) -> dict[str, str]:
    return dict(request.query_params or {})
