"""An import as stored: frozen records the repository returns and the services take."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FINAL = ("completed", "failed")


@dataclass(frozen=True)
class RowError:
    """A row's problem (``line`` is None for a problem of the whole upload)."""

    line: int | None
    detail: str


@dataclass(frozen=True)
class ImportRecord:
    id: str
    format: str
    size: int
    status: str
    created_at: str
    updated_at: str
    filename: str | None = None
    rows_total: int | None = None
    rows_imported: int = 0
    rows_failed: int = 0
    rows_done: int = 0
    errors: tuple[RowError, ...] = ()
    completed_at: str | None = None
    # When the cleanup job is to look at it (absent: it is not in ``due-index``).
    due_at: str | None = None
    # The pipeline's checkpoint (see ``pipeline.Progress``), while a file is read in parts.
    parse: Mapping[str, Any] | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINAL
