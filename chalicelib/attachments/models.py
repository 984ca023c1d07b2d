"""Request and response models of attachments and imports (the rules of their bodies, once).

The upper size limits are stage settings, so they are checked by the services against the
settings; everything static lives here and feeds the OpenAPI document.
"""

from __future__ import annotations

import math
import unicodedata
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from chalicelib.items.rules import to_field_errors
from chalicelib.problems import field_errors

MAX_ATTACHMENTS_PER_ITEM = 20
IMPORT_FORMATS = ("jsonl", "csv")
# The media type an import's upload form pins, by format.
IMPORT_CONTENT_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv"}
MAX_LISTED_ROW_ERRORS = 100

AttachmentContentType = Literal[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
    "text/csv",
    "application/json",
]
AttachmentStatus = Literal["pending", "ready", "rejected"]
ImportFormat = Literal["jsonl", "csv"]
ImportStatus = Literal["pending_upload", "processing", "completed", "failed"]


# The same rule as _check_filename, for the schema (ECMA-262 and Python's re read it alike):
# no '/', '\\' or control character (Unicode category Cc: U+0000-U+001F, U+007F-U+009F).
FILENAME_PATTERN = r"^[^/\\\u0000-\u001f\u007f-\u009f]*$"


def _integral(value: Any) -> Any:
    """JSON Schema's integer: ``1119.0`` and ``1.119e3`` are integers too; ``true`` and ``"1"`` are not."""
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else value
    if isinstance(value, Decimal) and value.is_finite():
        if value.adjusted() > 18:  # no file is 10^19 bytes; never build a huge int from 1e99999999
            raise PydanticCustomError("size", "is too large")
        return int(value) if value == value.to_integral_value() else value
    return value


def _check_filename(value: str) -> str:
    if "/" in value or "\\" in value:
        raise PydanticCustomError("filename", "must not contain '/' or '\\'")
    if any(unicodedata.category(c) == "Cc" for c in value):
        raise PydanticCustomError("filename", "must not contain control characters")
    return value


Filename = Annotated[
    str,
    StringConstraints(min_length=1, max_length=255),
    AfterValidator(_check_filename),
    Field(json_schema_extra={"pattern": FILENAME_PATTERN}),
]
Size = Annotated[
    StrictInt, Field(ge=1, description="Bytes; the upload must be exactly this long."), BeforeValidator(_integral)
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


_Body = TypeVar("_Body", "AttachmentCreate", "ImportCreate")


def parse_upload_request(model: type[_Body], body: Any, max_size: int) -> _Body:
    """The body of a request for an upload form, validated, its ``size`` at most ``max_size`` (a
    stage setting); else a ``validation-error`` problem."""
    try:
        parsed = model.model_validate(body)
    except ValidationError as exc:
        raise field_errors("validation-error", to_field_errors(exc)) from exc
    if parsed.size > max_size:
        raise field_errors("validation-error", [{"pointer": "/size", "detail": f"must be at most {max_size} bytes"}])
    return parsed


class AttachmentCreate(_Strict):
    """Body of ``POST /items/{id}/attachments``."""

    filename: Filename = Field(description="1 to 255 characters, no '/', '\\' or control characters.")
    content_type: AttachmentContentType
    size: Size


class Upload(BaseModel):
    """How to upload the file: a ``multipart/form-data`` POST of every field, then the file as ``file``."""

    method: Literal["POST"]
    url: str
    fields: dict[str, str]
    expires_at: datetime


class Attachment(BaseModel):
    """An attachment; ``upload`` while pending, ``download_url`` when ready, ``rejection_reason`` when rejected."""

    id: str
    item_id: str
    filename: str
    content_type: AttachmentContentType
    size: int
    status: AttachmentStatus
    created_at: datetime
    updated_at: datetime
    upload: Upload | None = None
    download_url: str | None = Field(default=None, description="Time-limited; downloads under the original filename.")
    rejection_reason: str | None = None


class AttachmentList(BaseModel):
    attachments: list[Attachment]


class ImportCreate(_Strict):
    """Body of ``POST /imports``."""

    format: ImportFormat
    size: Size
    filename: Filename | None = Field(
        default=None, description="Optional: the name of the file, kept with the import to tell imports apart."
    )


class ImportRowError(BaseModel):
    line: int | None = Field(description="1-based line in the file; null for a problem of the whole upload.")
    detail: str


class Import(BaseModel):
    """A bulk import; ``upload`` while ``pending_upload``."""

    id: str
    format: ImportFormat
    size: int
    filename: str | None = Field(default=None, description="As given on create; null when none was.")
    status: ImportStatus
    rows_total: int | None
    rows_imported: int
    rows_failed: int
    errors: list[ImportRowError] = Field(description="At most the first 100 row errors, by line.")
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    upload: Upload | None = None


class ImportPage(BaseModel):
    imports: list[Import]
    next_cursor: str | None
