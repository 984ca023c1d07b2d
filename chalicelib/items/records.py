"""Items as typed values: the writable fields, the stored record, and the store's interface.

Plain frozen dataclasses (no pydantic: a read must not import it, for cold start). The only
``dict`` here is the JSON edge: ``to_api`` gives the body the API shows for a record.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from chalicelib.store.writes import Precondition
from chalicelib.util.jsontypes import JsonObject, JsonValue

# Given the item as the API shows it, one more transaction entry to write atomically with it (an
# idempotency record), or None.
Completion = Callable[[JsonObject], "dict[str, object] | None"]


@dataclass(frozen=True)
class ItemFields:
    """The writable fields of an item, validated."""

    name: str
    description: str | None
    tags: tuple[str, ...]
    data: JsonObject
    expires_at: datetime | None


@dataclass(frozen=True)
class InPlacePatch:
    """A merge patch one write can apply: top-level fields set (``None`` resets one), and keys of
    ``data`` set or removed. ``data_growth`` bounds what the patch adds to the compact size of
    ``data``; the write is refused (``ConditionFailed``) when that could take it past ``data_budget``.
    """

    top_level: Mapping[str, object]
    data_sets: JsonObject
    data_removes: tuple[str, ...]
    data_growth: int
    data_budget: int


@dataclass(frozen=True)
class ItemRecord:
    """A stored item: what the API shows, and what the store keeps about it besides."""

    id: str
    name: str
    description: str | None
    tags: tuple[str, ...]
    data: JsonObject
    expires_at: str | None
    version: int
    created_at: str
    updated_at: str
    # Kept by the store, never shown: attachments counted on this incarnation, the token of the
    # last write (see the repository), the import row that wrote it, and an upper bound of the
    # compact size of ``data``.
    attachment_count: int = 0
    write_token: str | None = None
    import_ref: str | None = None
    data_size: int = 0

    def is_live(self, now_text: str) -> bool:
        return self.expires_at is None or self.expires_at > now_text


@dataclass(frozen=True)
class ItemPage:
    """One page of a listing, and the key to resume after (None on the last page): an id, or for
    ``name`` and ``updated_at`` the item's key in that index (``layout.name_key``/``updated_key``)."""

    items: tuple[ItemRecord, ...]
    last_id: str | None


@dataclass(frozen=True)
class Finding:
    """What ``GET /items`` looks for (API.md "Finding items"): ``by`` is ``id`` (all items by id),
    ``name`` or ``updated_at`` (all items in that order), ``tag`` (items carrying ``value``, by id)
    or ``prefix`` (items whose name starts with ``value``, case-insensitively, by name)."""

    by: str = "id"
    value: str | None = None


@dataclass(frozen=True)
class Tombstone:
    """A gone incarnation of an item whose attachments the cleanup job still has to remove."""

    item_id: str
    item_created_at: str


class ItemExists(Exception):
    """The id is taken by a live item; ``existing`` is that item when the store returned it."""

    def __init__(self, item_id: str, existing: ItemRecord | None = None) -> None:
        super().__init__(item_id)
        self.existing = existing


class ConditionFailed(Exception):
    """A conditional write did not apply; ``current`` is the live item, or None if there is none."""

    def __init__(self, current: ItemRecord | None) -> None:
        super().__init__("condition failed")
        self.current = current


class ExpressionTooLarge(Exception):
    """The write would need an expression over the store's limits; nothing was written."""


class ItemStore(Protocol):
    """What the item use cases need of a store (``ItemRepository`` is the DynamoDB one).

    Every write applies only to a live item (present, not expired) whose version satisfies the
    precondition, else ``ConditionFailed``; an expired item is gone to every operation.
    """

    def get(self, tenant: str, item_id: str) -> ItemRecord | None:
        """The live item, or None."""

    def create(
        self, tenant: str, item_id: str, fields: ItemFields, completion: Completion | None = None
    ) -> ItemRecord:
        """A new item at version 1 (an expired item's id is free), else ``ItemExists``; the
        ``completion``'s entry, if any, is written atomically with it."""

    def replace(
        self, tenant: str, item_id: str, fields: ItemFields, precondition: Precondition, current: ItemRecord | None = None
    ) -> ItemRecord:
        """All writable fields replaced; the version goes up by one. ``current``, when the caller has
        just read the item, saves finding out its tags (whose index records change with them)."""

    def patch_in_place(self, tenant: str, item_id: str, patch: InPlacePatch, precondition: Precondition) -> ItemRecord:
        """The patch applied in one write (see ``InPlacePatch``). Tags are not patched in place
        (their index records depend on the tags stored): a patch of ``tags`` goes through ``replace``
        (``ValueError`` here)."""

    def delete(self, tenant: str, item_id: str, precondition: Precondition) -> ItemRecord:
        """The item removed (its attachments left to the cleanup job); returns it as it was."""

    def list_page(self, tenant: str, limit: int, after_id: str | None, descending: bool) -> ItemPage:
        """Live items in id order after ``after_id``, at most ``limit``."""

    def find_page(self, tenant: str, finding: Finding, limit: int, after: str | None, descending: bool) -> ItemPage:
        """Live items matching ``finding`` in its order after the key ``after``, at most ``limit``."""


def to_api(record: ItemRecord) -> JsonObject:
    """The record as the API shows it."""
    return {
        "id": record.id,
        "name": record.name,
        "description": record.description,
        "tags": list(record.tags),
        "data": record.data,
        "expires_at": record.expires_at,
        "version": record.version,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


def writable(record: ItemRecord) -> JsonObject:
    """The record's writable fields as a request body would give them (a merge patch's target)."""
    tags: list[JsonValue] = list(record.tags)
    return {
        "name": record.name,
        "description": record.description,
        "tags": tags,
        "data": record.data,
        "expires_at": record.expires_at,
    }


@dataclass(frozen=True)
class ItemListing:
    """One page of ``GET /items``: its items, and the signed cursor of the next page."""

    items: tuple[ItemRecord, ...]
    next_cursor: str | None


def listing_to_api(listing: ItemListing) -> JsonObject:
    return {"items": [to_api(record) for record in listing.items], "next_cursor": listing.next_cursor}
