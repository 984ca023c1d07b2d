"""An ``ItemStore`` in a dict: the item rules of ``ItemRepository`` without DynamoDB.

Same semantics, checked by test_item_store_contract.py against the repository on moto: writes only
to live items at a matching version, an expired item is gone (its id free again), versions count
every write, pages in id order both ways with a resume id, findings (tag, name prefix, name,
updated_at) paged as the repository reads its indexes, and an item deleted (or replaced after
expiring) with attachments leaves a tombstone for the cleanup job. What it cannot have: the
expression limits (it never raises ``ExpressionTooLarge``), and a real transaction for a create's
``completion`` entry, which it keeps in ``companions`` to show it was written with the item.

ItemService takes it as its store, so use-case tests need no emulator.
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import datetime

from chalicelib.items.records import (
    Completion,
    ConditionFailed,
    Finding,
    InPlacePatch,
    ItemExists,
    ItemFields,
    ItemPage,
    ItemRecord,
    Tombstone,
    to_api,
)
from chalicelib.store import layout
from chalicelib.store.writes import Precondition
from chalicelib.util import clock, jsonutil


def _version_ok(record: ItemRecord, precondition: Precondition) -> bool:
    if precondition is None or precondition == "*":
        return True
    return record.version in precondition


def _expiry(value: datetime | None) -> str | None:
    return None if value is None else clock.format_timestamp(value)


class InMemoryItemStore:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str], ItemRecord] = {}
        self.tombstones: dict[str, list[Tombstone]] = {}
        self.companions: list[dict[str, object]] = []

    # -- reads ----------------------------------------------------------------------------
    def get(self, tenant: str, item_id: str) -> ItemRecord | None:
        record = self.items.get((tenant, item_id))
        return record if record is not None and record.is_live(clock.now_text()) else None

    def list_page(self, tenant: str, limit: int, after_id: str | None, descending: bool) -> ItemPage:
        """As one DynamoDB ``Query`` with ``Limit=limit + 1`` and a liveness filter reads it."""
        now = clock.now_text()
        ids = sorted((item_id for (owner, item_id) in self.items if owner == tenant), reverse=descending)
        if after_id is not None:
            ids = [i for i in ids if (i < after_id if descending else i > after_id)]
        evaluated = ids[: limit + 1]
        live = [self.items[(tenant, i)] for i in evaluated if self.items[(tenant, i)].is_live(now)]
        if len(live) > limit:
            return ItemPage(tuple(live[:limit]), live[limit - 1].id)
        return ItemPage(tuple(live), evaluated[-1] if len(evaluated) > limit else None)

    def find_page(self, tenant: str, finding: Finding, limit: int, after: str | None, descending: bool) -> ItemPage:
        """As the repository reads its indexes: ``Limit=limit + 1`` entries in the finding's order
        (index keys as ``layout`` spells them), expired items filtered after the read."""
        if finding.by == "id":
            return self.list_page(tenant, limit, after, descending)
        now = clock.now_text()
        records = [record for (owner, _), record in self.items.items() if owner == tenant]
        if finding.by == "tag":
            ids = sorted((r.id for r in records if finding.value in r.tags), reverse=descending)
            if after is not None:
                ids = [i for i in ids if (i < after if descending else i > after)]
            resume = ids[limit - 1] if len(ids) > limit else None
            page = [self.items[(tenant, i)] for i in ids[:limit]]
            return ItemPage(tuple(r for r in page if r.is_live(now)), resume)
        if finding.by == "updated_at":
            entries = [(layout.updated_key(r.updated_at, r.id), r) for r in records]
        else:
            entries = [(layout.name_key(r.name, r.id), r) for r in records]
        if finding.by == "prefix":
            prefix = str(finding.value).casefold()
            entries = [(k, r) for k, r in entries if k.startswith(layout.folded(prefix))]
        entries.sort(key=lambda entry: entry[0], reverse=descending)
        if after is not None:
            entries = [(k, r) for k, r in entries if (k < after if descending else k > after)]
        evaluated = entries[: limit + 1]
        live = [(k, r) for k, r in evaluated if r.is_live(now)]
        if finding.by == "prefix":
            wanted = str(finding.value).casefold()
            matching = [r for _, r in live[:limit] if r.name.casefold().startswith(wanted)]
        else:
            matching = [r for _, r in live[:limit]]
        if len(live) > limit:
            return ItemPage(tuple(matching), live[limit - 1][0])
        return ItemPage(tuple(matching), evaluated[-1][0] if len(evaluated) > limit else None)

    # -- writes ---------------------------------------------------------------------------
    def create(
        self, tenant: str, item_id: str, fields: ItemFields, completion: Completion | None = None
    ) -> ItemRecord:
        now = clock.now_text()
        old = self.items.get((tenant, item_id))
        if old is not None and old.is_live(now):
            raise ItemExists(item_id, old)
        record = ItemRecord(
            id=item_id,
            name=fields.name,
            description=fields.description,
            tags=tuple(fields.tags),
            data=fields.data,
            expires_at=_expiry(fields.expires_at),
            version=1,
            created_at=now,
            updated_at=now,
            write_token=secrets.token_urlsafe(12),
            data_size=jsonutil.compact_size(fields.data),
        )
        also = completion(to_api(record)) if completion is not None else None
        self.items[(tenant, item_id)] = record
        if also is not None:
            self.companions.append(also)
        if old is not None:
            self._bury(tenant, old)
        return record

    def replace(
        self, tenant: str, item_id: str, fields: ItemFields, precondition: Precondition, current: ItemRecord | None = None
    ) -> ItemRecord:
        current = self._writable(tenant, item_id, precondition)
        return self._write(
            tenant,
            current,
            name=fields.name,
            description=fields.description,
            tags=tuple(fields.tags),
            data=fields.data,
            data_size=jsonutil.compact_size(fields.data),
            expires_at=_expiry(fields.expires_at),
        )

    def patch_in_place(self, tenant: str, item_id: str, patch: InPlacePatch, precondition: Precondition) -> ItemRecord:
        if "tags" in patch.top_level:
            raise ValueError("tags are replaced, not patched in place")
        current = self._writable(tenant, item_id, precondition)
        changes: dict[str, object] = {}
        for field, value in patch.top_level.items():
            if field == "expires_at":
                changes[field] = _expiry(value) if isinstance(value, datetime) or value is None else value
            else:
                changes[field] = value
        data = dict(changes.get("data", current.data))  # type: ignore[call-overload]
        if patch.data_sets or patch.data_removes:
            size = int(changes.get("data_size", current.data_size))  # type: ignore[call-overload]
            if size > patch.data_budget - patch.data_growth:
                raise ConditionFailed(current)
            changes["data_size"] = size + patch.data_growth
            data.update(patch.data_sets)
            for key in patch.data_removes:
                data.pop(key, None)
        changes["data"] = data
        return self._write(tenant, current, **changes)

    def delete(self, tenant: str, item_id: str, precondition: Precondition) -> ItemRecord:
        current = self._writable(tenant, item_id, precondition)
        del self.items[(tenant, item_id)]
        self._bury(tenant, current)
        return current

    # -- helpers --------------------------------------------------------------------------
    def _writable(self, tenant: str, item_id: str, precondition: Precondition) -> ItemRecord:
        current = self.get(tenant, item_id)
        if current is None or not _version_ok(current, precondition):
            raise ConditionFailed(current)
        return current

    def _write(self, tenant: str, current: ItemRecord, **changes: object) -> ItemRecord:
        record = replace(
            current,
            **changes,  # type: ignore[arg-type]
            version=current.version + 1,
            updated_at=clock.now_text(),
            write_token=secrets.token_urlsafe(12),
        )
        self.items[(tenant, current.id)] = record
        return record

    def _bury(self, tenant: str, old: ItemRecord) -> None:
        if old.attachment_count > 0:
            self.tombstones.setdefault(tenant, []).append(Tombstone(old.id, old.created_at))
