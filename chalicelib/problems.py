"""RFC 9457 problem documents: the one error taxonomy of the service.

Every failure the application produces is a ``Problem``; ``app.py`` turns it into a response.
Infrastructure failures become problems in ``store/failures.py``, so throttling is a 503 everywhere,
never a 500.
"""

from __future__ import annotations

from typing import Any

PROBLEM_CONTENT_TYPE = "application/problem+json"

# slug -> (status, title)
PROBLEM_TYPES: dict[str, tuple[int, str]] = {
    "bad-request": (400, "Request is malformed"),
    "unauthorized": (401, "Authentication is required"),
    "forbidden": (403, "Access is denied"),
    "not-found": (404, "Resource not found"),
    "method-not-allowed": (405, "Method not allowed"),
    "conflict": (409, "Request conflicts with the current state"),
    "precondition-failed": (412, "Precondition failed"),
    "payload-too-large": (413, "Request body is too large"),
    "unsupported-media-type": (415, "Unsupported media type"),
    "validation-error": (422, "Request body is invalid"),
    "idempotency-key-reused": (422, "Idempotency key was used with another request"),
    "rate-limited": (429, "Too many requests"),
    "internal-error": (500, "Internal error"),
    "service-unavailable": (503, "Service temporarily unavailable"),
}

SLUG_BY_STATUS: dict[int, str] = {}
for _slug, (_status, _title) in PROBLEM_TYPES.items():
    SLUG_BY_STATUS.setdefault(_status, _slug)


class Problem(Exception):
    """An error that ends the request with a problem document."""

    def __init__(
        self,
        slug: str,
        detail: str,
        *,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        title: str | None = None,
    ) -> None:
        super().__init__(detail)
        status, default_title = PROBLEM_TYPES[slug]
        self.slug = slug
        self.status = status
        self.title = title or default_title
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}

    def document(self, request_id: str, trace_id: str | None = None) -> dict[str, Any]:
        """The problem document; ``trace_id`` (the X-Ray trace, when traced) is an RFC 9457 extension member."""
        doc: dict[str, Any] = {
            "type": f"/problems/{self.slug}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "request_id": request_id,
        }
        if self.errors:
            doc["errors"] = self.errors
        if trace_id:
            doc["trace_id"] = trace_id
        return doc


def not_found(what: str = "item") -> Problem:
    return Problem("not-found", f"{what} does not exist")


def field_errors(slug: str, errors: list[dict[str, str]], detail: str | None = None) -> Problem:
    count = len(errors)
    return Problem(
        slug,
        detail or (f"{count} field is invalid" if count == 1 else f"{count} fields are invalid"),
        errors=errors,
    )


def query_error(name: str, detail: str) -> Problem:
    return Problem("bad-request", f"query parameter '{name}' {detail}",
                   errors=[{"pointer": f"/query/{name}", "detail": detail}])


def unavailable(detail: str, retry_after: int = 1) -> Problem:
    return Problem("service-unavailable", detail, headers={"Retry-After": str(retry_after)})
