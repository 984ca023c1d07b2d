"""The item use cases on the in-memory store: no emulator, milliseconds per test.

test_item_store_contract.py holds the in-memory store to the repository's semantics, so what these
show of ``ItemService`` (validation, merge patch, preconditions, paging) holds on DynamoDB too.
"""

from __future__ import annotations

import pytest

from chalicelib.config.settings import get_settings
from chalicelib.items.records import listing_to_api, to_api
from chalicelib.items.service import ItemService
from chalicelib.problems import Problem
from tests.unit.memory_item_store import InMemoryItemStore

TENANT = "memory"


@pytest.fixture
def store() -> InMemoryItemStore:
    return InMemoryItemStore()


@pytest.fixture
def service(store: InMemoryItemStore) -> ItemService:
    return ItemService(get_settings(), store=store)


def problem_type(exc: pytest.ExceptionInfo[Problem]) -> str:
    return exc.value.slug


def test_create_get_and_the_api_body(service: ItemService) -> None:
    created = service.create(TENANT, {"id": "a1", "name": " padded ", "tags": ["t", "t"], "data": {"n": 1}})
    assert to_api(service.get(TENANT, "a1")) == to_api(created)
    assert (created.name, created.tags, created.version) == ("padded", ("t",), 1)
    with pytest.raises(Problem) as conflict:
        service.create(TENANT, {"id": "a1", "name": "again"})
    assert problem_type(conflict).endswith("conflict")
    with pytest.raises(Problem) as invalid:
        service.create(TENANT, {"name": ""})
    assert problem_type(invalid).endswith("validation-error")


def test_merge_patch_in_place_and_merged(service: ItemService) -> None:
    service.create(TENANT, {"id": "a1", "name": "n", "data": {"a": {"b": 1, "c": 2}, "k": 1}})
    in_place = service.patch(TENANT, "a1", {"data": {"k": None, "x": 2}}, None)
    assert (in_place.version, in_place.data) == (2, {"a": {"b": 1, "c": 2}, "x": 2})
    merged = service.patch(TENANT, "a1", {"data": {"a": {"c": None}}}, frozenset({2}))
    assert (merged.version, merged.data) == (3, {"a": {"b": 1}, "x": 2})


def test_a_stale_if_match_is_a_precondition_failure(service: ItemService) -> None:
    service.create(TENANT, {"id": "a1", "name": "n"})
    service.replace(TENANT, "a1", {"name": "m"}, frozenset({1}))
    for write in (
        lambda: service.replace(TENANT, "a1", {"name": "x"}, frozenset({1})),
        lambda: service.patch(TENANT, "a1", {"name": "x"}, frozenset({1})),
        lambda: service.delete(TENANT, "a1", frozenset({1})),
    ):
        with pytest.raises(Problem) as failed:
            write()
        assert problem_type(failed).endswith("precondition-failed")
        assert failed.value.headers == {"ETag": '"2"'}
    service.delete(TENANT, "a1", frozenset({2}))
    with pytest.raises(Problem) as gone:
        service.get(TENANT, "a1")
    assert problem_type(gone).endswith("not-found")


def test_pages_follow_signed_cursors(service: ItemService) -> None:
    for n in range(5):
        service.create(TENANT, {"id": f"a{n}", "name": "n"})
    seen: list[str] = []
    params = {"limit": "2"}
    while True:
        listing = service.list(TENANT, params)
        seen += [r.id for r in listing.items]
        if listing.next_cursor is None:
            break
        params = {"limit": "2", "cursor": listing.next_cursor}
    assert seen == ["a0", "a1", "a2", "a3", "a4"]
    body = listing_to_api(service.list(TENANT, {"order": "desc", "limit": "1"}))
    assert body["items"] == [to_api(service.get(TENANT, "a4"))]
    assert isinstance(body["next_cursor"], str)


def test_deleting_an_item_with_attachments_leaves_a_tombstone(service: ItemService, store: InMemoryItemStore) -> None:
    from dataclasses import replace

    created = service.create(TENANT, {"id": "a1", "name": "n"})
    store.items[(TENANT, "a1")] = replace(created, attachment_count=2)
    service.delete(TENANT, "a1", None)
    assert [(t.item_id, t.item_created_at) for t in store.tombstones[TENANT]] == [("a1", created.created_at)]
