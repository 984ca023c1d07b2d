"""The single-table layout: the only module that spells a key, a key prefix or an index.

One table holds everything, partitioned by tenant so isolation is structural, not a filter:

| record            | pk               | sk                          |
| ----------------- | ---------------- | --------------------------- |
| item              | ``T#<tenant>``   | ``ITEM#<item id>``          |
| attachment        | ``T#<tenant>``   | ``ATT#<item id>#<att id>``  |
| attachments of a deleted item (tombstone) | ``T#<tenant>`` | ``ATTGONE#<item id>#<item created_at>`` |
| import            | ``T#<tenant>``   | ``IMPORT#<import id>``      |
| import row error  | ``T#<tenant>``   | ``IMPERR#<import id>#<line, 10 digits>`` |
| import chunk done | ``T#<tenant>``   | ``IMPCHUNK#<import id>#<chunk, 8 digits>`` |
| idempotency entry | ``T#<tenant>``   | ``IDEMPOTENCY#<hash>``      |
| API key (lookup)  | ``KEY#<sha256>`` | ``KEY``                     |
| API key (listing) | ``T#<tenant>``   | ``APIKEY#<key id>``         |
| rate-limit bucket | ``RATE#<key id>``| ``RATE``                    |

Work for the cleanup job is found through the sparse ``due-index`` GSI: a record that will need
cleaning carries ``due_pk`` (one of a few shards, so no single index partition gets hot) and
``due_at`` (when). Records without them are not in the index, so a cleanup run reads only what
is due: O(expired), never a ``Scan``.

Keys are returned as attribute-value maps (``{"pk": {"S": ...}, "sk": {"S": ...}}``), ready for a
request.
"""

from __future__ import annotations

import zlib
from enum import Enum

DUE_INDEX = "due-index"
DUE_SHARDS = 8

_TENANT = "T#"
ITEM_PREFIX = "ITEM#"
ATTACHMENT_PREFIX = "ATT#"
TOMBSTONE_PREFIX = "ATTGONE#"
IMPORT_PREFIX = "IMPORT#"
IMPORT_ERROR_PREFIX = "IMPERR#"
IMPORT_CHUNK_PREFIX = "IMPCHUNK#"
IDEMPOTENCY_PREFIX = "IDEMPOTENCY"
API_KEY_PREFIX = "APIKEY#"

Key = dict[str, dict[str, str]]


def key(pk: str, sk: str) -> Key:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def tenant_pk(tenant: str) -> str:
    return f"{_TENANT}{tenant}"


def tenant_of(pk: str) -> str | None:
    """The tenant whose partition ``pk`` is, or None for a partition of no tenant."""
    return pk[len(_TENANT):] if pk.startswith(_TENANT) else None


def item_sk(item_id: str) -> str:
    return ITEM_PREFIX + item_id


def item_key(tenant: str, item_id: str) -> Key:
    return key(tenant_pk(tenant), item_sk(item_id))


def attachment_sk(item_id: str, attachment_id: str) -> str:
    return f"{ATTACHMENT_PREFIX}{item_id}#{attachment_id}"


def attachments_of(item_id: str) -> str:
    """The sort-key prefix of one item's attachments."""
    return f"{ATTACHMENT_PREFIX}{item_id}#"


def attachment_key(tenant: str, item_id: str, attachment_id: str) -> Key:
    return key(tenant_pk(tenant), attachment_sk(item_id, attachment_id))


def tombstone_sk(item_id: str, item_created_at: str) -> str:
    return f"{TOMBSTONE_PREFIX}{item_id}#{item_created_at}"


def import_sk(import_id: str) -> str:
    return IMPORT_PREFIX + import_id


def import_key(tenant: str, import_id: str) -> Key:
    return key(tenant_pk(tenant), import_sk(import_id))


def import_errors_of(import_id: str) -> str:
    """The sort-key prefix of one import's row errors."""
    return f"{IMPORT_ERROR_PREFIX}{import_id}#"


def import_error_key(tenant: str, import_id: str, line: int) -> Key:
    return key(tenant_pk(tenant), f"{import_errors_of(import_id)}{line:010d}")


def import_chunk_key(tenant: str, import_id: str, chunk: int) -> Key:
    return key(tenant_pk(tenant), f"{IMPORT_CHUNK_PREFIX}{import_id}#{chunk:08d}")


def idempotency_key(tenant: str, key_hash: str) -> Key:
    """An ``Idempotency-Key``'s record: ``IDEMPOTENCY#<hash>`` in the tenant's partition."""
    return key(tenant_pk(tenant), f"{IDEMPOTENCY_PREFIX}#{key_hash}")


def api_key_lookup_key(key_hash: str) -> Key:
    return key(f"KEY#{key_hash}", "KEY")


def api_key_sk(key_id: str) -> str:
    return API_KEY_PREFIX + key_id


def rate_key(key_id: str) -> Key:
    return key(f"RATE#{key_id}", "RATE")


def due_pk(pk: str, sk: str) -> str:
    return f"DUE#{zlib.crc32(f'{pk}|{sk}'.encode()) % DUE_SHARDS}"


def due(pk: str, sk: str, at: str) -> dict[str, str]:
    """The attributes that put a record in ``due-index``, due at ``at``."""
    return {"due_pk": due_pk(pk, sk), "due_at": at}


def all_due_pks() -> list[str]:
    return [f"DUE#{shard}" for shard in range(DUE_SHARDS)]


class Kind(Enum):
    """What a record of a tenant's partition is, told by its sort key."""

    ITEM = ITEM_PREFIX
    TOMBSTONE = TOMBSTONE_PREFIX
    ATTACHMENT = ATTACHMENT_PREFIX
    IMPORT = IMPORT_PREFIX


def kind_of(sk: str) -> tuple[Kind, str] | None:
    """The kind of a record and the rest of its sort key (an item's or import's id), or None."""
    # Longest prefix first: ATTGONE# starts like ATT#.
    for kind in (Kind.ITEM, Kind.TOMBSTONE, Kind.ATTACHMENT, Kind.IMPORT):
        if sk.startswith(kind.value):
            return kind, sk[len(kind.value):]
    return None
