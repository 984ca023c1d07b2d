"""One suite, two item stores: the in-memory one (tests/unit/memory_item_store.py) and
``ItemRepository`` on the unit suite's moto. Both must answer every case alike, so a test of the
use cases on the in-memory store says what the service does on DynamoDB.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from chalicelib.items.records import (
    ConditionFailed,
    Finding,
    InPlacePatch,
    ItemExists,
    ItemFields,
    ItemRecord,
    ItemStore,
    listing_to_api,
    to_api,
)
from chalicelib.util import clock
from tests.unit.memory_item_store import InMemoryItemStore


@pytest.fixture(params=["in-memory", "dynamodb"])
def store(request: pytest.FixtureRequest) -> ItemStore:
    if request.param == "in-memory":
        return InMemoryItemStore()
    request.getfixturevalue("aws_mock")
    from chalicelib.items.repository import ItemRepository

    return ItemRepository(os.environ["TABLE_NAME"])


@pytest.fixture
def tenant() -> str:
    return f"contract-{secrets.token_hex(6)}"


def fields(name: str = "n", **overrides: Any) -> ItemFields:
    values: dict[str, Any] = {"name": name, "description": None, "tags": (), "data": {}, "expires_at": None}
    values.update(overrides)
    return ItemFields(**values)


def later(monkeypatch: pytest.MonkeyPatch, seconds: int) -> None:
    real_now = clock.now
    monkeypatch.setattr(clock, "now", lambda: real_now() + timedelta(seconds=seconds))


def test_create_then_get(store: ItemStore, tenant: str) -> None:
    created = store.create(
        tenant, "a1", fields("first", description="d", tags=("x", "y"), data={"n": 1, "p": Decimal("1.5")})
    )
    assert isinstance(created, ItemRecord)
    assert (created.id, created.name, created.description, created.tags) == ("a1", "first", "d", ("x", "y"))
    assert (created.version, created.created_at == created.updated_at) == (1, True)
    got = store.get(tenant, "a1")
    assert got is not None
    assert to_api(got) == to_api(created)
    assert store.get(tenant, "missing") is None


def test_create_hands_the_api_body_to_the_completion(store: ItemStore, tenant: str) -> None:
    seen: list[dict[str, Any]] = []

    def completion(body: dict[str, Any]) -> None:
        seen.append(body)

    created = store.create(tenant, "a1", fields(), completion=completion)
    assert seen == [to_api(created)]


def test_create_on_a_live_id_conflicts(store: ItemStore, tenant: str) -> None:
    store.create(tenant, "a1", fields("first"))
    with pytest.raises(ItemExists):
        store.create(tenant, "a1", fields("second"))
    got = store.get(tenant, "a1")
    assert got is not None and got.name == "first"


def test_an_expired_item_is_gone(store: ItemStore, tenant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store.create(tenant, "a1", fields(expires_at=clock.now() + timedelta(seconds=60)))
    store.create(tenant, "a2", fields())
    later(monkeypatch, 120)
    assert store.get(tenant, "a1") is None
    assert [r.id for r in store.list_page(tenant, 10, None, False).items] == ["a2"]
    for write in (
        lambda: store.replace(tenant, "a1", fields("x"), None),
        lambda: store.patch_in_place(tenant, "a1", InPlacePatch({"name": "x"}, {}, (), 0, 100), None),
        lambda: store.delete(tenant, "a1", None),
    ):
        with pytest.raises(ConditionFailed) as failed:
            write()
        assert failed.value.current is None
    again = store.create(tenant, "a1", fields("again"))
    assert (again.version, again.name) == (1, "again")


def test_replace_with_version_precondition(store: ItemStore, tenant: str) -> None:
    store.create(tenant, "a1", fields("first", description="d", data={"k": 1}))
    replaced = store.replace(tenant, "a1", fields("second", tags=("t",)), frozenset({1}))
    assert (replaced.version, replaced.name, replaced.description, replaced.tags, replaced.data) == (
        2, "second", None, ("t",), {}
    )
    with pytest.raises(ConditionFailed) as failed:
        store.replace(tenant, "a1", fields("third"), frozenset({1}))
    assert failed.value.current is not None and failed.value.current.version == 2
    assert store.replace(tenant, "a1", fields("any"), "*").version == 3
    assert store.replace(tenant, "a1", fields("unconditional"), None).version == 4
    with pytest.raises(ConditionFailed) as gone:
        store.replace(tenant, "missing", fields(), "*")
    assert gone.value.current is None


def test_replace_sets_and_clears_expiry(store: ItemStore, tenant: str) -> None:
    store.create(tenant, "a1", fields())
    expires = clock.now() + timedelta(days=1)
    with_expiry = store.replace(tenant, "a1", fields(expires_at=expires), None)
    assert with_expiry.expires_at == clock.format_timestamp(expires)
    assert store.replace(tenant, "a1", fields(), None).expires_at is None


def test_patch_in_place(store: ItemStore, tenant: str) -> None:
    store.create(tenant, "a1", fields("first", description="d", data={"keep": 1, "drop": 2}))
    patch = InPlacePatch({"name": "second", "description": None}, {"new": "v"}, ("drop",), 12, 1000)
    patched = store.patch_in_place(tenant, "a1", patch, frozenset({1}))
    assert (patched.version, patched.name, patched.description, patched.data) == (
        2, "second", None, {"keep": 1, "new": "v"}
    )
    got = store.get(tenant, "a1")
    assert got is not None and to_api(got) == to_api(patched)
    with pytest.raises(ConditionFailed) as stale:
        store.patch_in_place(tenant, "a1", InPlacePatch({"name": "x"}, {}, (), 0, 1000), frozenset({1}))
    assert stale.value.current is not None and stale.value.current.version == 2


def test_patch_beyond_the_data_budget_is_refused(store: ItemStore, tenant: str) -> None:
    store.create(tenant, "a1", fields(data={"k": "v"}))  # compact size 9
    with pytest.raises(ConditionFailed) as failed:
        store.patch_in_place(tenant, "a1", InPlacePatch({}, {"big": "x" * 50}, (), 60, 20), None)
    assert failed.value.current is not None and failed.value.current.version == 1
    unchanged = store.get(tenant, "a1")
    assert unchanged is not None and unchanged.data == {"k": "v"}


def test_delete(store: ItemStore, tenant: str) -> None:
    store.create(tenant, "a1", fields())
    with pytest.raises(ConditionFailed) as stale:
        store.delete(tenant, "a1", frozenset({7}))
    assert stale.value.current is not None and stale.value.current.version == 1
    deleted = store.delete(tenant, "a1", frozenset({1}))
    assert deleted.id == "a1"
    assert store.get(tenant, "a1") is None
    with pytest.raises(ConditionFailed) as gone:
        store.delete(tenant, "a1", None)
    assert gone.value.current is None
    assert store.create(tenant, "a1", fields()).version == 1


@pytest.mark.parametrize("descending", [False, True])
def test_list_pages_in_id_order_with_resume(store: ItemStore, tenant: str, descending: bool) -> None:
    ids = ["a1", "a2", "a3", "a4", "a5"]
    for item_id in reversed(ids):
        store.create(tenant, item_id, fields(item_id))
    expected = list(reversed(ids)) if descending else ids
    pages: list[list[str]] = []
    after: str | None = None
    while True:
        page = store.list_page(tenant, 2, after, descending)
        pages.append([r.id for r in page.items])
        if page.last_id is None:
            break
        after = page.last_id
    assert pages == [expected[0:2], expected[2:4], expected[4:]]
    assert [r.id for r in store.list_page(tenant, 5, None, descending).items] == expected
    assert store.list_page(tenant, 5, None, descending).last_id is None
    assert store.list_page(tenant, 5, expected[-1], descending).items == ()


def test_listing_body(store: ItemStore, tenant: str) -> None:
    from chalicelib.items.records import ItemListing

    created = store.create(tenant, "a1", fields())
    page = store.list_page(tenant, 10, None, False)
    assert listing_to_api(ItemListing(page.items, None)) == {"items": [to_api(created)], "next_cursor": None}


def test_tenants_are_isolated(store: ItemStore, tenant: str) -> None:
    other = f"{tenant}-other"
    store.create(tenant, "a1", fields("mine"))
    assert store.get(other, "a1") is None
    assert store.list_page(other, 10, None, False).items == ()
    with pytest.raises(ConditionFailed):
        store.replace(other, "a1", fields(), None)
    with pytest.raises(ConditionFailed):
        store.delete(other, "a1", None)
    theirs = store.create(other, "a1", fields("theirs"))
    assert theirs.version == 1
    mine = store.get(tenant, "a1")
    assert mine is not None and mine.name == "mine"


def _walk(store: ItemStore, tenant: str, finding: Finding, limit: int, descending: bool) -> list[list[str]]:
    pages: list[list[str]] = []
    after: str | None = None
    for _ in range(50):
        page = store.find_page(tenant, finding, limit, after, descending)
        pages.append([r.id for r in page.items])
        if page.last_id is None:
            return pages
        after = page.last_id
    raise AssertionError("the walk did not end")


FINDINGS = [
    (Finding("id"), ["a1", "a2", "a3", "a4", "a5"]),
    (Finding("tag", "t"), ["a1", "a3", "a5"]),
    (Finding("name"), ["a3", "a5", "a2", "a4", "a1"]),
    (Finding("prefix", "B"), ["a3", "a5", "a2"]),
    (Finding("updated_at"), ["a5", "a4", "a3", "a2", "a1"]),
]


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize(("finding", "expected"), FINDINGS, ids=[f.by for f, _ in FINDINGS])
def test_find_pages_in_the_findings_order_with_resume(
    store: ItemStore, tenant: str, finding: Finding, expected: list[str], descending: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = {"a5": "b", "a4": "c", "a3": "B", "a2": "bz", "a1": "Ca"}
    for seconds, item_id in enumerate(["a5", "a4", "a3", "a2", "a1"]):
        later(monkeypatch, seconds)  # distinct updated_at, in the order created
        store.create(tenant, item_id, fields(names[item_id], tags=("t",) if item_id in ("a1", "a3", "a5") else ()))
    if descending:
        expected = list(reversed(expected))
    pages = _walk(store, tenant, finding, 2, descending)
    assert [i for page in pages for i in page] == expected
    assert all(len(page) <= 2 for page in pages)
    assert [r.id for r in store.find_page(tenant, finding, 5, None, descending).items] == expected


def test_find_omits_expired_items(store: ItemStore, tenant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store.create(tenant, "a1", fields("b", tags=("t",), expires_at=clock.now() + timedelta(seconds=60)))
    store.create(tenant, "a2", fields("b", tags=("t",)))
    later(monkeypatch, 120)
    for finding, _ in FINDINGS:
        assert [i for page in _walk(store, tenant, finding, 1, False) for i in page] == ["a2"], finding


def test_find_follows_replaced_names_and_tags(store: ItemStore, tenant: str) -> None:
    store.create(tenant, "a1", fields("alpha", tags=("x", "y")))
    store.replace(tenant, "a1", fields("omega", tags=("y", "z")), None)
    assert store.find_page(tenant, Finding("tag", "x"), 10, None, False).items == ()
    assert [r.id for r in store.find_page(tenant, Finding("tag", "z"), 10, None, False).items] == ["a1"]
    assert store.find_page(tenant, Finding("prefix", "al"), 10, None, False).items == ()
    assert [r.id for r in store.find_page(tenant, Finding("prefix", "OM"), 10, None, False).items] == ["a1"]
    store.delete(tenant, "a1", None)
    assert store.find_page(tenant, Finding("tag", "z"), 10, None, False).items == ()


def test_replace_with_new_tags_honours_the_precondition(store: ItemStore, tenant: str) -> None:
    created = store.create(tenant, "a1", fields(tags=("x",)))
    with pytest.raises(ConditionFailed) as stale:
        store.replace(tenant, "a1", fields(tags=("y",)), frozenset({5}), created)
    assert stale.value.current is not None and stale.value.current.tags == ("x",)
    replaced = store.replace(tenant, "a1", fields(tags=("y",)), frozenset({1}), created)
    assert (replaced.version, replaced.tags) == (2, ("y",))
    got = store.get(tenant, "a1")
    assert got is not None and to_api(got) == to_api(replaced)


def test_replace_with_a_stale_current_still_applies_to_the_item_as_it_is(store: ItemStore, tenant: str) -> None:
    stale = store.create(tenant, "a1", fields(tags=("x",)))
    store.replace(tenant, "a1", fields(tags=("w",)), None)
    replaced = store.replace(tenant, "a1", fields(tags=("y",)), None, stale)
    assert (replaced.version, replaced.tags) == (3, ("y",))
    assert store.find_page(tenant, Finding("tag", "w"), 10, None, False).items == ()


def test_tags_are_not_patched_in_place(store: ItemStore, tenant: str) -> None:
    store.create(tenant, "a1", fields(tags=("x",)))
    with pytest.raises(ValueError):
        store.patch_in_place(tenant, "a1", InPlacePatch({"tags": ["y"]}, {}, (), 0, 100), None)
    got = store.get(tenant, "a1")
    assert got is not None and (got.version, got.tags) == (1, ("x",))


def test_find_is_tenant_isolated(store: ItemStore, tenant: str) -> None:
    store.create(tenant, "a1", fields("n", tags=("t",)))
    for finding, _ in FINDINGS:
        assert store.find_page(f"{tenant}-other", finding, 10, None, False).items == ()
