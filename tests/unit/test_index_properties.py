"""Property: after any interleaving of writes, every finding index says what the items say.

Random sequences of create, replace, merge patch (tags, name), delete, import rows (the actions the
import consumer writes for a row), expiry (the clock moves on) and the cleanup job's run, over a
few ids in two tenants, against ``ItemRepository`` on the unit suite's moto. After each sequence,
per tenant:

- the tag index records are exactly one per (tag, item) of the items stored (expired ones too,
  until the cleanup job deletes them with their records);
- every stored item's ``name_key`` and ``updated_key`` are the ones its name and ``updated_at`` give;
- walking each finding mode yields exactly the live matching items, in the mode's order.
"""

from __future__ import annotations

import os
import secrets
import time
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.config.settings import get_settings
from chalicelib.items.records import ConditionFailed, Finding, ItemExists, ItemFields, ItemRecord
from chalicelib.items.repository import ItemRepository, record_of
from chalicelib.problems import Problem
from chalicelib.store import aws, layout
from chalicelib.store import transactions as dynamo_batch
from chalicelib.store.codec import from_item
from chalicelib.util import clock
from tests.unit import iam_audit

# Each example is up to 14 writes, a cleanup run and a read of every index against the emulator, on a
# table of its own: a third of the profile's examples (tests/conftest.py), 10 in `make test`, 33 thorough.
SETTINGS = settings(max_examples=max(10, settings.default.max_examples // 3), deadline=None, derandomize=True,
                    database=None, suppress_health_check=list(HealthCheck))

IDS = ["a", "b", "c"]
TAGS = ["x", "y", "z"]
NAMES = ["apple", "Apple", "banana", "Äpfel", "apple pie"]

ids = st.sampled_from(IDS)
tag_lists = st.lists(st.sampled_from(TAGS), max_size=3, unique=True)
names = st.sampled_from(NAMES)
tenants = st.sampled_from([0, 1])
operations = st.one_of(
    st.tuples(st.just("create"), tenants, ids, names, tag_lists, st.booleans()),
    st.tuples(st.just("replace"), tenants, ids, names, tag_lists, st.booleans()),
    st.tuples(st.just("patch tags"), tenants, ids, tag_lists),
    st.tuples(st.just("patch name"), tenants, ids, names),
    st.tuples(st.just("delete"), tenants, ids),
    st.tuples(st.just("import row"), tenants, ids, names, tag_lists),
    st.tuples(st.just("expire")),
    st.tuples(st.just("cleanup")),
)


def _fields(name: str, tags: list[str], expiring: bool = False) -> ItemFields:
    expires_at = clock.now() + timedelta(seconds=60) if expiring else None
    return ItemFields(name=name, description=None, tags=tuple(tags), data={}, expires_at=expires_at)


def _stored(tenant: str) -> tuple[list[dict[str, Any]], set[tuple[str, str]]]:
    """The tenant's stored items, and its tag index records as (tag, id), read whole (a test may Scan)."""
    client = aws.dynamodb()
    items: list[dict[str, Any]] = []
    tag_records: set[tuple[str, str]] = set()
    pages = client.get_paginator("scan").paginate(TableName=os.environ["TABLE_NAME"], ConsistentRead=True)
    for page in pages:
        for raw in page["Items"]:
            pk, sk = raw["pk"]["S"], raw["sk"]["S"]
            if pk == layout.tenant_pk(tenant) and sk.startswith(layout.ITEM_PREFIX):
                items.append(from_item(raw))
            prefix = layout.tag_pk(tenant, "")
            if pk.startswith(prefix):
                tag_records.add((pk[len(prefix):], sk[len(layout.ITEM_PREFIX):]))
    return items, tag_records


def _walk(repository: ItemRepository, tenant: str, finding: Finding, descending: bool) -> list[str]:
    seen: list[str] = []
    after: str | None = None
    for _ in range(100):
        page = repository.find_page(tenant, finding, 2, after, descending)
        seen += [record.id for record in page.items]
        if page.last_id is None:
            return seen
        after = page.last_id
    raise AssertionError("the walk did not end")


def _check(repository: ItemRepository, tenant: str) -> None:
    items, tag_records = _stored(tenant)
    assert tag_records == {(tag, str(item["id"])) for item in items for tag in item["tags"]}
    for item in items:
        assert item[layout.NAME_KEY] == layout.name_key(str(item["name"]), str(item["id"]))
        assert item[layout.UPDATED_KEY] == layout.updated_key(str(item["updated_at"]), str(item["id"]))
    now = clock.now_text()
    live = [record_of(item) for item in items if record_of(item).is_live(now)]

    def ordered(records: list[ItemRecord], key: Any) -> list[str]:
        return [record.id for record in sorted(records, key=key)]

    expected = {
        Finding("id"): ordered(live, lambda r: r.id),
        Finding("name"): ordered(live, lambda r: layout.name_key(r.name, r.id)),
        Finding("updated_at"): ordered(live, lambda r: layout.updated_key(r.updated_at, r.id)),
        Finding("prefix", "APP"): ordered(
            [r for r in live if r.name.casefold().startswith("app")], lambda r: layout.name_key(r.name, r.id)
        ),
    }
    for tag in TAGS:
        expected[Finding("tag", tag)] = ordered([r for r in live if tag in r.tags], lambda r: r.id)
    for finding, ids_in_order in expected.items():
        assert _walk(repository, tenant, finding, False) == ids_in_order, finding
        assert _walk(repository, tenant, finding, True) == list(reversed(ids_in_order)), finding


@pytest.fixture
def own_table(aws_mock: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A table of this test's own, defined as the stack's: its cleanup runs and index reads see only
    its items, not the rest of the session's (moto reads an index by walking the whole table). The
    IAM audit records its calls as calls on the stack's table."""
    client = aws.dynamodb()
    table = client.describe_table(TableName=os.environ["TABLE_NAME"])["Table"]
    name = f"{table['TableName']}-properties-{secrets.token_hex(3)}"
    client.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST", KeySchema=table["KeySchema"],
        AttributeDefinitions=table["AttributeDefinitions"],
        GlobalSecondaryIndexes=[{key: index[key] for key in ("IndexName", "KeySchema", "Projection")}
                                for index in table["GlobalSecondaryIndexes"]],
    )
    monkeypatch.setenv("TABLE_NAME", name)
    iam_audit.stand_in(name, table["TableName"])
    yield
    iam_audit.stand_in(name, None)
    client.delete_table(TableName=name)


@pytest.fixture
def moving_clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Seconds added to the service's clock; the test moves it on."""
    offset = [0.0]
    real_now = clock.now
    monkeypatch.setattr(clock, "now", lambda: real_now() + timedelta(seconds=offset[0]))
    return offset


@SETTINGS
@given(st.lists(operations, min_size=1, max_size=14))
def test_indexes_equal_what_the_items_say(own_table: None, moving_clock: list[float], steps: list[tuple[Any, ...]]) -> None:
    from chalicelib.cleanup.job import CleanupJob
    from chalicelib.items.service import ItemService

    moving_clock[0] = 0.0
    repository = ItemRepository(os.environ["TABLE_NAME"])
    service = ItemService(get_settings(), repository)
    run = secrets.token_hex(4)
    names_of = [f"p{run}a", f"p{run}b"]
    for step in steps:
        kind = step[0]
        if kind == "expire":
            moving_clock[0] += 120
            continue
        if kind == "cleanup":
            CleanupJob(get_settings(), time.monotonic() + 30).run()
            continue
        tenant, item_id = names_of[step[1]], step[2]
        try:
            if kind == "create":
                repository.create(tenant, item_id, _fields(step[3], step[4], step[5]))
            elif kind == "replace":
                repository.replace(tenant, item_id, _fields(step[3], step[4], step[5]), None)
            elif kind == "patch tags":
                service.patch(tenant, item_id, {"tags": step[3]}, None)
            elif kind == "patch name":
                service.patch(tenant, item_id, {"name": step[3]}, None)
            elif kind == "delete":
                service.delete(tenant, item_id, None)
            elif kind == "import row":
                _import_row(repository, tenant, item_id, step[3], step[4])
        except (ItemExists, ConditionFailed, Problem):
            pass  # taken, gone or refused: a write that did not happen
    for tenant in names_of:
        _check(repository, tenant)


def _import_row(repository: ItemRepository, tenant: str, item_id: str, name: str, tags: list[str]) -> None:
    """What the import consumer writes for one row: its create actions, the expired item they
    replace (read first, as the consumer reads the chunk's ids) taken into account."""
    now = clock.now_text()
    found = aws.dynamodb().get_item(
        TableName=os.environ["TABLE_NAME"], Key=layout.item_key(tenant, item_id), ConsistentRead=True
    ).get("Item")
    existing = record_of(from_item(found)) if found else None
    if existing is not None and existing.is_live(now):
        return  # a row error: the id is taken
    actions = repository.create_actions(tenant, item_id, _fields(name, tags), now, f"imp#{item_id}", replacing=existing)
    dynamo_batch.transact_with(actions)
