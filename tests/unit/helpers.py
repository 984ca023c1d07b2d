from __future__ import annotations

import json
from typing import Any


def body(response: Any) -> Any:
    return json.loads(response.body) if response.body else None


def assert_problem(response: Any, status: int, slug: str, pointers: list[str] | None = None) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.body)
    assert response.headers["Content-Type"] == "application/problem+json"
    doc = body(response)
    assert doc["type"] == f"/problems/{slug}"
    assert doc["status"] == status
    assert doc["title"] and doc["detail"]
    assert doc["request_id"] == response.headers["X-Request-Id"]
    if pointers is not None:
        assert sorted(e["pointer"] for e in doc["errors"]) == sorted(pointers), doc
    return doc


class RowClock:
    """``time`` for the import pipeline where every reading advances one tick: an invocation's
    budget is then a number of rows, whatever the machine's speed."""

    def __init__(self) -> None:
        self.ticks = 0.0

    def monotonic(self) -> float:
        self.ticks += 1
        return self.ticks

    @staticmethod
    def sleep(_seconds: float) -> None:
        return None
