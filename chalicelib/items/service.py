"""Item use cases: validation, merge patch, conditional writes, paging.

Takes request bodies as parsed JSON, returns typed records (``records.to_api`` gives their JSON),
and raises ``Problem`` for every failure a client can cause. The store is any ``ItemStore``: the
DynamoDB repository by default.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from chalicelib.config.settings import Settings, require
from chalicelib.items.records import (
    Completion,
    ConditionFailed,
    ExpressionTooLarge,
    Finding,
    InPlacePatch,
    ItemExists,
    ItemFields,
    ItemListing,
    ItemRecord,
    ItemStore,
    writable,
)
from chalicelib.items.repository import ItemRepository
from chalicelib.limits import MAX_DATA_BYTES, MAX_DATA_DEPTH, MAX_PREFIX_LENGTH, MAX_TAG_LENGTH, is_valid_id
from chalicelib.problems import Problem, field_errors, not_found, query_error
from chalicelib.store import layout, paging
from chalicelib.store.writes import Precondition
from chalicelib.util import jsonutil, ulid
from chalicelib.util.jsontypes import JsonObject, JsonValue

if TYPE_CHECKING:
    from chalicelib.items.rules import Shape

LISTING = "items"
# Without If-Match a merged PATCH retries on a concurrent version change; each retry re-reads,
# so a handful is plenty even under heavy contention on one item.
MERGE_ATTEMPTS = 8


# Validation (pydantic-core) is imported by the requests that carry a body, not by reads, and a write
# imports no pydantic at all (cold start).


def _validate(shape: Shape, body: object) -> dict[str, Any]:
    """The body's fields, normalised, defaults filled in; a 422 with the errors of every field."""
    from pydantic_core import ValidationError

    from chalicelib.items import rules

    try:
        return rules.validate(shape, body)
    except ValidationError as exc:
        raise field_errors("validation-error", rules.to_field_errors(exc)) from exc


def _fields(body: dict[str, Any]) -> ItemFields:
    return ItemFields(
        name=body["name"],
        description=body["description"],
        tags=tuple(body["tags"]),
        data=body["data"],
        expires_at=body["expires_at"],
    )


def _precondition_failed(current: ItemRecord) -> Problem:
    return Problem(
        "precondition-failed",
        f"the item has changed: its current version is {current.version}",
        headers={"ETag": f'"{current.version}"'},
    )


class ItemService:
    def __init__(self, settings: Settings, store: ItemStore | None = None) -> None:
        self.settings = settings
        self.repository: ItemStore = (
            store if store is not None else ItemRepository(require(settings.table_name, "TABLE_NAME"))
        )

    def get(self, tenant: str, item_id: str) -> ItemRecord:
        _check_id(item_id)
        record = self.repository.get(tenant, item_id)
        if record is None:
            raise not_found()
        return record

    def create(self, tenant: str, body: JsonValue, completion: Completion | None = None) -> ItemRecord:
        """Create an item; ``completion`` (see ``ItemStore.create``) rides in the same write."""
        model = _validate("ItemCreate", body)
        item_id = model["id"] or ulid.new()
        try:
            record = self.repository.create(tenant, item_id, _fields(model), completion=completion)
        except ItemExists as exc:
            raise Problem("conflict", f"an item with id '{item_id}' already exists") from exc
        return record

    def replace(self, tenant: str, item_id: str, body: JsonValue, precondition: Precondition) -> ItemRecord:
        _check_id(item_id)
        model = _validate("ItemReplace", body)
        try:
            return self.repository.replace(tenant, item_id, _fields(model), precondition)
        except ConditionFailed as exc:
            raise self._write_failure(exc) from exc

    def delete(self, tenant: str, item_id: str, precondition: Precondition) -> None:
        _check_id(item_id)
        try:
            self.repository.delete(tenant, item_id, precondition)
        except ConditionFailed as exc:
            raise self._write_failure(exc) from exc

    @staticmethod
    def _write_failure(exc: ConditionFailed) -> Problem:
        if exc.current is None:
            return not_found()
        return _precondition_failed(exc.current)

    def patch(self, tenant: str, item_id: str, body: JsonValue, precondition: Precondition) -> ItemRecord:
        _check_id(item_id)
        if not isinstance(body, dict):
            raise field_errors("validation-error", [{"pointer": "", "detail": "a merge patch must be a JSON object"}])
        patch = _validate("ItemPatch", body)
        if "name" in body and body["name"] is None:
            raise field_errors("validation-error", [{"pointer": "/name", "detail": "is required and cannot be removed"}])
        data_patch = body.get("data")
        in_place = not isinstance(data_patch, dict) or not any(isinstance(v, dict) for v in data_patch.values())
        # New tags change their index records, which depend on the tags stored: read, merge, replace.
        if in_place and "tags" not in body:
            try:
                return self._patch_in_place(tenant, item_id, body, patch, precondition)
            except ConditionFailed as exc:
                if exc.current is None:
                    raise not_found() from exc
                if not _version_matches(exc.current, precondition):
                    raise _precondition_failed(exc.current) from exc
                # Only the size budget failed: merge exactly below, starting from this state.
                return self._patch_merged(tenant, item_id, body, precondition, exc.current)
            except ExpressionTooLarge:
                # Too many data keys for one expression (nothing was sent): read, merge and write
                # the whole result, two round trips instead of one.
                return self._patch_merged(tenant, item_id, body, precondition, None)
        return self._patch_merged(tenant, item_id, body, precondition, None)

    def _patch_in_place(
        self, tenant: str, item_id: str, body: JsonObject, patch: dict[str, Any], precondition: Precondition
    ) -> ItemRecord:
        from chalicelib.items.rules import check_json_value  # writes only (cold start)

        top_level: dict[str, object] = {}
        for field in ("name", "description", "tags", "expires_at"):
            if field in body:
                value = patch[field]
                top_level[field] = [] if field == "tags" and value is None else value
        data_sets: JsonObject = {}
        data_removes: list[str] = []
        growth = 0
        data_patch = body.get("data", ...)
        if data_patch is None:
            top_level["data"] = {}
            top_level["data_size"] = 2
        elif isinstance(data_patch, dict):
            patched = patch["data"] or {}
            for key, value in patched.items():
                if value is None:
                    data_removes.append(key)
                    continue
                if check_json_value(value) + 1 > MAX_DATA_DEPTH:
                    raise field_errors(
                        "validation-error",
                        [{
                            "pointer": jsonutil.pointer("data", key),
                            "detail": f"must not be nested more than {MAX_DATA_DEPTH} levels deep",
                        }],
                    )
                data_sets[key] = value
                # Upper bound of what this member adds to the compact text: key, colon, value, comma.
                growth += len(jsonutil.dumps({key: value}).encode("utf-8")) - 1
        in_place = InPlacePatch(top_level, data_sets, tuple(data_removes), growth, MAX_DATA_BYTES)
        return self.repository.patch_in_place(tenant, item_id, in_place, precondition)

    def _patch_merged(
        self,
        tenant: str,
        item_id: str,
        body: JsonObject,
        precondition: Precondition,
        current: ItemRecord | None,
    ) -> ItemRecord:
        """Read, merge, validate the whole result, write back conditional on the version read."""
        for _attempt in range(MERGE_ATTEMPTS):
            if current is None:
                current = self.repository.get(tenant, item_id)
                if current is None:
                    raise not_found()
            if not _version_matches(current, precondition):
                raise _precondition_failed(current)
            merged = merge_patch(writable(current), body)
            model = _validate("ItemReplace", merged)
            expected = frozenset({current.version})
            try:
                return self.repository.replace(tenant, item_id, _fields(model), expected, current)
            except ConditionFailed as exc:
                if exc.current is None:
                    raise not_found() from exc
                if precondition is not None:
                    raise _precondition_failed(exc.current) from exc
                current = exc.current  # lost a race: merge again onto the newer version
                time.sleep(0.005 * (_attempt + 1))
        raise Problem("conflict", "the item is being changed by other requests; retry", headers={"Retry-After": "1"})

    def list(self, tenant: str, params: dict[str, str]) -> ItemListing:
        """A page of ``GET /items``: all items by id, or found as ``tag``, ``q`` and ``sort`` say.

        The cursor is bound to the tenant, the finding (the listing's name says which) and the order.
        """
        finding = finding_of(params)
        listing = LISTING if finding.by == "id" else f"{LISTING}?{finding.by}={finding.value or ''}"
        page = paging.page_request(params, tenant=tenant, listing=listing, secrets=self.settings.cursor_secrets)
        if page.after is not None and not _resumable(finding, page.after):
            raise query_error("cursor", "is not a cursor issued by this listing")
        found = self.repository.find_page(tenant, finding, page.limit, page.after, page.descending)
        return ItemListing(found.items, paging.next_cursor(page, found.last_id, self.settings.cursor_signing_secret))


SORTS = ("id", "name", "updated_at")


def finding_of(params: dict[str, str]) -> Finding:
    """What ``tag``, ``q`` and ``sort`` ask for; an unsupported value or combination is a 400."""
    sort = params.get("sort")
    if sort is not None and sort not in SORTS:
        raise query_error("sort", f"must be one of {', '.join(SORTS)}")
    tag, prefix = params.get("tag"), params.get("q")
    for name, value in (("tag", tag), ("q", prefix)):
        if value is not None and not _is_unicode_text(value):
            raise query_error(name, "must be text (it holds a lone surrogate)")
    if tag is not None and prefix is not None:
        raise Problem(
            "bad-request",
            "query parameters 'tag' and 'q' cannot be combined",
            errors=[{"pointer": "/query/q", "detail": "cannot be combined with 'tag'"}],
        )
    if tag is not None:
        tag = tag.strip()  # as tags are trimmed on write
        if not 1 <= len(tag) <= MAX_TAG_LENGTH:
            raise query_error("tag", f"must be 1 to {MAX_TAG_LENGTH} characters after trimming")
        _own_order_only(sort, "tag", "id")
        return Finding("tag", tag)
    if prefix is not None:
        if not 1 <= len(prefix) <= MAX_PREFIX_LENGTH:
            raise query_error("q", f"must be 1 to {MAX_PREFIX_LENGTH} characters")
        _own_order_only(sort, "q", "name")
        return Finding("prefix", prefix)
    return Finding(sort or "id")


def _is_unicode_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _own_order_only(sort: str | None, name: str, own: str) -> None:
    if sort is not None and sort != own:
        raise Problem(
            "bad-request",
            f"query parameter '{name}' cannot be combined with sort={sort}: its items come ordered by {own}",
            errors=[{"pointer": "/query/sort", "detail": f"must be {own} (or absent) with '{name}'"}],
        )


def _resumable(finding: Finding, after: str) -> bool:
    """Whether ``after`` (from a valid cursor of this listing) is a key its index can resume at."""
    if finding.by in ("id", "tag"):
        return is_valid_id(after)
    return is_valid_id(layout.id_of_index_key(after))


def _check_id(item_id: str) -> None:
    """An id that cannot exist is simply not found (and never reaches DynamoDB's key limits)."""
    if not is_valid_id(item_id):
        raise not_found()


def _version_matches(current: ItemRecord, precondition: Precondition) -> bool:
    if precondition is None or precondition == "*":
        return True
    return current.version in precondition


def merge_patch(target: JsonValue, patch: JsonValue) -> JsonValue:
    """RFC 7396 JSON Merge Patch."""
    if not isinstance(patch, dict):
        return patch
    result: JsonObject = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result

