"""Stored files: object keys, presigned upload forms and download links, object checks.

Object keys are built from the tenant and ids only (``attachments/<tenant>/<item id>/<attachment
id>``, ``imports/<tenant>/<import id>``), never from anything a user typed, so a filename can
neither escape its tenant's prefix nor collide with another file. Both id alphabets are
``[A-Za-z0-9_-]``, which S3 stores, signs and reports in events without any escaping surprises.

Clients upload directly to storage with a presigned POST whose policy pins the exact size and the
content type and expires soon; the API never proxies file bytes. Storage emulators do not enforce
those policies, so the event handlers re-check every stored object (``head``) before trusting it.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.limits import ID_PATTERN
from chalicelib.store import aws
from chalicelib.util import clock

ATTACHMENTS_PREFIX = "attachments/"
IMPORTS_PREFIX = "imports/"
# Working files of imports in progress (outside ``imports/``: storing one starts no handler).
IMPORT_WORK_PREFIX = "import-work/"
# A presigned upload form is valid this long at most (less when the upload window ends sooner).
UPLOAD_FORM_SECONDS = 15 * 60
DOWNLOAD_URL_SECONDS = 5 * 60
_DELETE_BATCH = 1000

_ID = ID_PATTERN.removeprefix("^").removesuffix("$")
# Matched with ``fullmatch``: ``$`` would also accept a key ending in a newline.
_ATTACHMENT_KEY = re.compile(rf"attachments/(?P<tenant>{_ID})/(?P<item>{_ID})/(?P<attachment>{_ID})")
_IMPORT_KEY = re.compile(rf"imports/(?P<tenant>{_ID})/(?P<import_id>{_ID})")


@dataclass(frozen=True)
class AttachmentKey:
    tenant: str
    item_id: str
    attachment_id: str


@dataclass(frozen=True)
class ImportKey:
    tenant: str
    import_id: str


@dataclass(frozen=True)
class StoredObject:
    size: int
    content_type: str
    etag: str = ""


@dataclass(frozen=True)
class ObjectEvent:
    """One record of an S3 event: the bucket and the decoded object key."""

    bucket: str
    key: str


def attachment_key(tenant: str, item_id: str, attachment_id: str) -> str:
    return f"{ATTACHMENTS_PREFIX}{tenant}/{item_id}/{attachment_id}"


def import_key(tenant: str, import_id: str) -> str:
    return f"{IMPORTS_PREFIX}{tenant}/{import_id}"


def import_work_key(tenant: str, import_id: str) -> str:
    """Where an import's ids registry waits between invocations of its storage handler."""
    return f"{IMPORT_WORK_PREFIX}{tenant}/{import_id}/ids.sqlite"


def parse_attachment_key(key: str) -> AttachmentKey | None:
    match = _ATTACHMENT_KEY.fullmatch(key)
    if match is None:
        return None
    return AttachmentKey(match["tenant"], match["item"], match["attachment"])


def parse_import_key(key: str) -> ImportKey | None:
    match = _IMPORT_KEY.fullmatch(key)
    if match is None:
        return None
    return ImportKey(match["tenant"], match["import_id"])


def object_events(event: Any) -> Iterator[ObjectEvent | None]:
    """The records of an S3 event; ``None`` for a record that is not an object event.

    Keys arrive URL-encoded with ``+`` for space (``%2B`` for a real plus sign, ``%2F`` for a
    slash), exactly as S3 sends them to Lambda and to queues.
    """
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list):
        yield None
        return
    for record in records:
        try:
            bucket = record["s3"]["bucket"]["name"]
            raw_key = record["s3"]["object"]["key"]
        except (KeyError, TypeError):
            yield None
            continue
        if not isinstance(bucket, str) or not isinstance(raw_key, str):
            yield None
            continue
        yield ObjectEvent(bucket, urllib.parse.unquote_plus(raw_key))


def window_end(created_at: str, upload_window_seconds: int) -> datetime:
    """When the upload window of a record created at ``created_at`` closes."""
    return datetime.fromisoformat(created_at.replace("Z", "+00:00")) + timedelta(seconds=upload_window_seconds)


def form_expiry(created_at: str, upload_window_seconds: int) -> datetime | None:
    """When a fresh upload form should expire: soon, and never after the upload window closes."""
    window_end_ = window_end(created_at, upload_window_seconds)
    expiry = min(clock.now() + timedelta(seconds=UPLOAD_FORM_SECONDS), window_end_)
    return expiry if expiry > clock.now() else None


def upload_form(bucket: str, key: str, content_type: str, size: int, expires_at: datetime) -> dict[str, Any]:
    """A presigned POST that accepts exactly ``size`` bytes of ``content_type`` until ``expires_at``."""
    client = aws.s3()  # first: creating it can take a while, and the lifetime counts from now
    seconds = max(1, int((expires_at - clock.now()).total_seconds()))
    post = client.generate_presigned_post(
        Bucket=bucket,
        Key=key,
        Fields={"Content-Type": content_type},
        Conditions=[{"Content-Type": content_type}, ["content-length-range", size, size]],
        ExpiresIn=seconds,
    )
    return {
        "method": "POST",
        "url": post["url"],
        "fields": post["fields"],
        "expires_at": clock.format_timestamp(expires_at),
    }


def content_disposition(filename: str) -> str:
    """``attachment`` with the original filename (RFC 6266: ASCII fallback plus UTF-8 form)."""
    fallback = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else "_" for c in filename)
    encoded = urllib.parse.quote(filename, safe="")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


def download_url(bucket: str, key: str, filename: str, content_type: str) -> str:
    url: str = aws.s3().generate_presigned_url(
        "get_object",
        Params={
            "Bucket": bucket,
            "Key": key,
            "ResponseContentDisposition": content_disposition(filename),
            "ResponseContentType": content_type,
        },
        ExpiresIn=DOWNLOAD_URL_SECONDS,
    )
    return url


def head(bucket: str, key: str) -> StoredObject | None:
    """Size and content type of a stored object; ``None`` when there is none."""
    try:
        response = aws.s3().head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    return StoredObject(
        size=int(response["ContentLength"]),
        content_type=str(response.get("ContentType", "")),
        etag=str(response.get("ETag", "")),
    )


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def delete(bucket: str, keys: list[str]) -> None:
    """Delete objects (absent ones are fine); raises if storage refuses any of them."""
    client = aws.s3()
    for start in range(0, len(keys), _DELETE_BATCH):
        batch = keys[start : start + _DELETE_BATCH]
        if len(batch) == 1:
            client.delete_object(Bucket=bucket, Key=batch[0])
            continue
        response = client.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True}
        )
        errors = response.get("Errors") or []
        if errors:
            first = errors[0]
            raise RuntimeError(f"could not delete {len(errors)} objects, e.g. {first.get('Key')}: {first.get('Code')}")


def open_stream(bucket: str, key: str, *, start: int = 0, etag: str = "") -> Any:
    """The object's body as a stream (read in chunks; never whole), from byte ``start`` on;
    with ``etag``, only if the object is still that version (else a 412 ``ClientError``)."""
    kwargs: dict[str, Any] = {}
    if start:
        kwargs["Range"] = f"bytes={start}-"
    if etag:
        kwargs["IfMatch"] = etag
    return aws.s3().get_object(Bucket=bucket, Key=key, **kwargs)["Body"]


def copy_onto_itself(bucket: str, key: str, content_type: str, note: str) -> None:
    """Copy an object onto itself (same content and type), which raises a fresh
    ``s3:ObjectCreated:Copy`` event for it: how a long import continues in a new invocation."""
    aws.s3().copy_object(
        Bucket=bucket,
        Key=key,
        CopySource={"Bucket": bucket, "Key": key},
        MetadataDirective="REPLACE",
        ContentType=content_type,
        Metadata={"import-continued": note},
    )
