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
| tag of an item    | ``TAG#<tenant>#<tag>`` | ``ITEM#<item id>``    |
| API key (lookup)  | ``KEY#<sha256>`` | ``KEY``                     |
| API key (listing) | ``T#<tenant>``   | ``APIKEY#<key id>``         |
| rate-limit bucket | ``RATE#<key id>``| ``RATE``                    |

Work for the cleanup job is found through the sparse ``due-index`` GSI: a record that will need
cleaning carries ``due_pk`` (one of a few shards, so no single index partition gets hot) and
``due_at`` (when). Records without them are not in the index, so a cleanup run reads only what
is due: O(expired), never a ``Scan``.

Finding items (API.md "Finding items") reads indexes kept with the item in the same write:

- ``name-index`` (GSI, sparse): partition ``pk`` (the tenant), sort ``name_key``: the case-folded
  name, ``NAME_KEY_SEPARATOR`` and the id, so names order case-insensitively, then by id. A GSI sort
  key holds at most 1024 bytes: the name part is cut at ``NAME_KEY_BYTES`` (a prefix search longer
  than that is finished by comparing the names themselves).
- ``updated-index`` (GSI, sparse): partition ``pk``, sort ``updated_key``: ``updated_at#<id>``.
- tags: one small record per (tenant, tag, item), ``TAG#<tenant>#<tag>`` / ``ITEM#<id>``, written and
  removed in the same transaction as the item. Each tag has a partition of its own, so a popular tag
  does not share one with the tenant's items. Tenant names hold no ``#`` (``ID_PATTERN``), so the
  partition names exactly one (tenant, tag).

Keys are returned as attribute-value maps (``{"pk": {"S": ...}, "sk": {"S": ...}}``), ready for a
request.
"""

from __future__ import annotations

import zlib
from enum import Enum

DUE_INDEX = "due-index"
NAME_INDEX = "name-index"
UPDATED_INDEX = "updated-index"
NAME_KEY = "name_key"
UPDATED_KEY = "updated_key"
# Sorts before every character a name can hold, so "ab" (and its ids) comes before "ab c".
NAME_KEY_SEPARATOR = "\x00"
# 1024 bytes (DynamoDB's limit on a GSI sort key) less the separator and the longest id (64 bytes).
NAME_KEY_BYTES = 1024 - 1 - 64
DUE_SHARDS = 8

_TENANT = "T#"
ITEM_PREFIX = "ITEM#"
ATTACHMENT_PREFIX = "ATT#"
TOMBSTONE_PREFIX = "ATTGONE#"
IMPORT_PREFIX = "IMPORT#"
IMPORT_ERROR_PREFIX = "IMPERR#"
IMPORT_CHUNK_PREFIX = "IMPCHUNK#"
IDEMPOTENCY_PREFIX = "IDEMPOTENCY"
TAG_PREFIX = "TAG#"
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


def folded(text: str, max_bytes: int = NAME_KEY_BYTES) -> str:
    """``text`` case-folded (Unicode), cut to at most ``max_bytes`` of UTF-8 on a character boundary."""
    return text.casefold().encode("utf-8")[:max_bytes].decode("utf-8", "ignore")


def name_key(name: str, item_id: str) -> str:
    """The item's sort key in ``name-index``."""
    return f"{folded(name)}{NAME_KEY_SEPARATOR}{item_id}"


def updated_key(updated_at: str, item_id: str) -> str:
    """The item's sort key in ``updated-index`` (``updated_at`` has a fixed width)."""
    return f"{updated_at}#{item_id}"


def id_of_index_key(index_key: str) -> str:
    """The item id at the end of a ``name_key`` or ``updated_key``."""
    return index_key.rsplit(NAME_KEY_SEPARATOR if NAME_KEY_SEPARATOR in index_key else "#", 1)[-1]


def index_start_key(tenant: str, attribute: str, index_key: str) -> dict[str, dict[str, str]]:
    """``ExclusiveStartKey`` of a page of ``name-index`` or ``updated-index`` after ``index_key``."""
    return {**item_key(tenant, id_of_index_key(index_key)), attribute: {"S": index_key}}


def tag_pk(tenant: str, tag: str) -> str:
    return f"{TAG_PREFIX}{tenant}#{tag}"


def tag_key(tenant: str, tag: str, item_id: str) -> Key:
    """The index record saying that ``item_id`` carries ``tag``."""
    return key(tag_pk(tenant, tag), item_sk(item_id))


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
