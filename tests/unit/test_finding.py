"""GET /items finding (API.md "Finding items"): tag, q, sort; order, limit, cursors bound to the
query; unsupported combinations; and the index records each write keeps exact."""

from __future__ import annotations

import os
from datetime import timedelta
from urllib.parse import quote

import pytest

from chalicelib.store import aws, layout
from chalicelib.util import clock
from tests.unit.helpers import assert_problem, body


def create(tenant, item_id: str, name: str, tags: list[str] | None = None, **extra) -> dict:
    response = tenant.request("POST", "/items", {"id": item_id, "name": name, "tags": tags or [], **extra})
    assert response.status_code == 201, response.body
    return body(response)


def walk(tenant, query: str, limit: int = 2) -> list[str]:
    """Every page of ``/items?query``; the ids in the order they came."""
    seen: list[str] = []
    url = f"/items?{query}&limit={limit}"
    for _ in range(100):
        page = body(tenant.request("GET", url))
        assert len(page["items"]) <= limit
        seen += [item["id"] for item in page["items"]]
        if page["next_cursor"] is None:
            return seen
        url = f"/items?{query}&limit={limit}&cursor={page['next_cursor']}"
    raise AssertionError("the walk did not end")


def stored_tags(tenant_name: str, tag: str) -> list[str]:
    """The ids the table's index records say carry ``tag``."""
    response = aws.dynamodb().query(
        TableName=os.environ["TABLE_NAME"],
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": layout.tag_pk(tenant_name, tag)}},
        ConsistentRead=True,
    )
    return [item["sk"]["S"][len(layout.ITEM_PREFIX):] for item in response["Items"]]


def later(monkeypatch: pytest.MonkeyPatch, seconds: int) -> None:
    real_now = clock.now
    monkeypatch.setattr(clock, "now", lambda: real_now() + timedelta(seconds=seconds))


# -- modes -------------------------------------------------------------------------------------

def test_tag_finds_the_items_carrying_it_by_id_both_ways(tenant):
    create(tenant, "c", "C", ["travel", "x"])
    create(tenant, "a", "A", ["travel"])
    create(tenant, "b", "B", ["home"])
    create(tenant, "d", "D", ["Travel"])  # tags compare exactly, case included
    assert walk(tenant, "tag=travel") == ["a", "c"]
    assert walk(tenant, "tag=travel&order=desc") == ["c", "a"]
    assert walk(tenant, f"tag={quote('  travel ')}") == ["a", "c"]  # trimmed as on write
    assert walk(tenant, "tag=travel&sort=id") == ["a", "c"]
    assert walk(tenant, "tag=nothing") == []


def test_q_finds_names_by_case_insensitive_prefix_in_name_order(tenant):
    create(tenant, "i1", "Receipt 2")
    create(tenant, "i2", "receipt 1")
    create(tenant, "i3", "RECEIPT 1")
    create(tenant, "i4", "Rec")
    create(tenant, "i5", "Invoice")
    create(tenant, "i6", "Straße")
    assert walk(tenant, "q=rec") == ["i4", "i2", "i3", "i1"]  # "rec" < "receipt 1" (i2 < i3) < "receipt 2"
    assert walk(tenant, "q=REC&order=desc") == ["i1", "i3", "i2", "i4"]
    assert walk(tenant, "q=receipt%201") == ["i2", "i3"]
    assert walk(tenant, "q=rec&sort=name") == ["i4", "i2", "i3", "i1"]
    assert walk(tenant, f"q={quote('STRASS')}") == ["i6"]  # Unicode case folding: ß is ss
    assert walk(tenant, "q=x") == []


def test_sort_name_orders_all_items_by_folded_name_then_id(tenant):
    create(tenant, "b", "apple")
    create(tenant, "a", "Apple")
    create(tenant, "c", "apple pie")
    create(tenant, "d", "Banana")
    assert walk(tenant, "sort=name") == ["a", "b", "c", "d"]
    assert walk(tenant, "sort=name&order=desc") == ["d", "c", "b", "a"]


def test_sort_updated_at_puts_recent_changes_first_with_desc(tenant):
    for item_id in ("a", "b", "c"):
        create(tenant, item_id, item_id)
    assert tenant.request("PATCH", "/items/a", {"description": "changed"}).status_code == 200
    newest_first = walk(tenant, "sort=updated_at&order=desc")
    assert newest_first[0] == "a"
    assert sorted(newest_first) == ["a", "b", "c"]
    assert walk(tenant, "sort=updated_at") == list(reversed(newest_first))


def test_sort_id_is_the_default_listing(tenant):
    for item_id in ("b", "a", "c"):
        create(tenant, item_id, item_id)
    assert walk(tenant, "sort=id") == walk(tenant, "") == ["a", "b", "c"]
    first = body(tenant.request("GET", "/items?limit=1"))
    # The default listing and sort=id are one query: their cursors serve each other.
    assert body(tenant.request("GET", f"/items?sort=id&limit=1&cursor={first['next_cursor']}"))["items"][0]["id"] == "b"


@pytest.mark.parametrize("query", ["tag=t", "q=n", "sort=name", "sort=updated_at"])
def test_each_mode_walks_every_match_exactly_once(tenant, query):
    ids = [f"i{n:02d}" for n in range(13)]
    for n, item_id in enumerate(ids):
        create(tenant, item_id, f"n{n % 4}", ["t"] if n % 3 else ["t", "u"])
    for limit in (1, 5, 13, 100):
        assert sorted(walk(tenant, query, limit)) == ids
        assert sorted(walk(tenant, query + "&order=desc", limit)) == ids


@pytest.mark.parametrize("query", ["tag=t", "q=n", "sort=name", "sort=updated_at"])
def test_expired_items_are_omitted_from_every_mode(tenant, monkeypatch, query):
    soon = clock.format_timestamp(clock.now() + timedelta(seconds=60))
    create(tenant, "gone", "n gone", ["t"], expires_at=soon)
    create(tenant, "kept", "n kept", ["t"])
    later(monkeypatch, 120)
    assert walk(tenant, query, 1) == ["kept"]


def test_tenants_are_isolated_in_every_index(tenant, other_tenant):
    create(tenant, "mine", "Shared name", ["shared"])
    create(other_tenant, "theirs", "Shared name", ["shared"])
    for query in ("tag=shared", "q=shared", "sort=name", "sort=updated_at"):
        assert walk(tenant, query) == ["mine"]
        assert walk(other_tenant, query) == ["theirs"]


# -- cursors --------------------------------------------------------------------------------------

def _first_cursor(tenant, query: str) -> str:
    page = body(tenant.request("GET", f"/items?{query}&limit=1"))
    assert page["next_cursor"]
    return page["next_cursor"]


@pytest.mark.parametrize(
    ("minted", "presented"),
    [
        ("tag=t", "tag=u"),
        ("tag=t", ""),
        ("q=n", "q=m"),
        ("q=n", "sort=name"),
        ("sort=name", "sort=updated_at"),
        ("sort=updated_at", "sort=id"),
        ("sort=name", "sort=name&order=desc"),
        ("", "tag=t"),
    ],
)
def test_a_cursor_is_refused_by_any_other_query(tenant, minted, presented):
    for n in range(3):
        create(tenant, f"i{n}", f"n m {n}", ["t", "u"])
    cursor = _first_cursor(tenant, minted)
    assert_problem(tenant.request("GET", f"/items?{presented}&cursor={cursor}"), 400, "bad-request")


def test_a_cursor_is_refused_by_another_tenant(tenant, other_tenant):
    for n in range(3):
        create(tenant, f"i{n}", f"n{n}", ["t"])
    for query in ("tag=t", "q=n", "sort=name", "sort=updated_at"):
        cursor = _first_cursor(tenant, query)
        assert_problem(other_tenant.request("GET", f"/items?{query}&cursor={cursor}"), 400, "bad-request")


# -- bad queries --------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("query", "pointer"),
    [
        ("tag=a&q=b", "/query/q"),
        ("tag=a&sort=name", "/query/sort"),
        ("tag=a&sort=updated_at", "/query/sort"),
        ("q=a&sort=id", "/query/sort"),
        ("q=a&sort=updated_at", "/query/sort"),
        ("sort=size", "/query/sort"),
        ("sort=", "/query/sort"),
        ("tag=", "/query/tag"),
        (f"tag={quote('   ')}", "/query/tag"),
        ("tag=" + "x" * 51, "/query/tag"),
        ("q=", "/query/q"),
        ("q=" + "x" * 101, "/query/q"),
    ],
)
def test_unsupported_queries_are_400_saying_which(tenant, query, pointer):
    problem = assert_problem(tenant.request("GET", f"/items?{query}"), 400, "bad-request")
    assert [error["pointer"] for error in problem["errors"]] == [pointer]


@pytest.mark.parametrize("name", ["tag", "q"])
def test_a_lone_surrogate_is_a_400_not_a_500(name):
    from chalicelib.items.service import finding_of
    from chalicelib.problems import Problem

    with pytest.raises(Problem) as refused:
        finding_of({name: "a\ud800"})
    assert refused.value.status == 400


def test_combination_problem_names_the_combination(tenant):
    problem = assert_problem(tenant.request("GET", "/items?tag=a&sort=name"), 400, "bad-request")
    assert "tag" in problem["detail"] and "sort=name" in problem["detail"]


def test_limits_of_q_and_tag_are_inclusive(tenant):
    assert tenant.request("GET", "/items?q=" + "x" * 100).status_code == 200
    assert tenant.request("GET", "/items?tag=" + "x" * 50).status_code == 200


def test_an_item_holds_at_most_20_tags(tenant):
    tags = [f"t{n}" for n in range(21)]
    assert_problem(tenant.request("POST", "/items", {"name": "n", "tags": tags}), 422, "validation-error")
    created = create(tenant, "full", "n", tags[:20])
    assert len(created["tags"]) == 20
    assert all(stored_tags(tenant.name, tag) == ["full"] for tag in tags[:20])


def test_a_name_longer_than_its_index_key_is_found_by_its_whole_prefix(tenant):
    # 𝔸 is 4 bytes of UTF-8: 200 of them (800 bytes) fit; the key is cut past NAME_KEY_BYTES only
    # for longer folded names, e.g. "ﬃ" (3 bytes) folds to "ffi".
    long_name = "ﬃ" * 200  # folds to 600 characters, 600 bytes
    create(tenant, "long", long_name)
    assert walk(tenant, f"q={quote('FFI' * 33)}") == ["long"]
    key = layout.name_key(long_name, "long")
    assert len(key.encode()) <= 1024


def test_a_long_folded_name_is_cut_to_fit_the_index_key():
    name = "ΐ" * 200  # each folds to three characters of two bytes
    key = layout.name_key(name, "x" * 64)
    assert len(key.encode()) <= 1024
    assert layout.id_of_index_key(key) == "x" * 64


# -- the indexes stay exact ------------------------------------------------------------------------

def test_tag_records_follow_create_replace_patch_and_delete(tenant):
    create(tenant, "i", "n", ["a", "b"])
    assert (stored_tags(tenant.name, "a"), stored_tags(tenant.name, "b")) == (["i"], ["i"])
    assert tenant.request("PUT", "/items/i", {"name": "n", "tags": ["b", "c"]}).status_code == 200
    assert (stored_tags(tenant.name, "a"), stored_tags(tenant.name, "c")) == ([], ["i"])
    assert tenant.request("PATCH", "/items/i", {"tags": ["d"]}).status_code == 200
    assert [stored_tags(tenant.name, t) for t in "abcd"] == [[], [], [], ["i"]]
    assert tenant.request("PATCH", "/items/i", {"tags": None}).status_code == 200
    assert stored_tags(tenant.name, "d") == []
    assert tenant.request("PATCH", "/items/i", {"tags": ["e"], "data": {"k": 1}}).status_code == 200
    assert stored_tags(tenant.name, "e") == ["i"]
    assert tenant.request("DELETE", "/items/i").status_code == 204
    assert stored_tags(tenant.name, "e") == []


def test_a_replace_keeping_the_tags_is_one_write(tenant, monkeypatch):
    create(tenant, "i", "n", ["a"])
    calls: list[str] = []
    client = aws.dynamodb()
    for operation in ("update_item", "transact_write_items", "put_item", "delete_item"):
        real = getattr(client, operation)
        monkeypatch.setattr(client, operation, lambda *a, _r=real, _o=operation, **k: (calls.append(_o), _r(*a, **k))[1])
    assert tenant.request("PUT", "/items/i", {"name": "renamed", "tags": ["a"]}).status_code == 200
    assert calls == ["update_item"]
    calls.clear()
    assert tenant.request("PUT", "/items/i", {"name": "renamed", "tags": ["b"]}).status_code == 200
    assert calls == ["update_item", "transact_write_items"]  # the failed condition told the old tags
    assert walk(tenant, "tag=b") == ["i"]
    assert walk(tenant, "q=renamed") == ["i"]


def test_if_match_still_decides_a_tag_change(tenant):
    create(tenant, "i", "n", ["a"])
    response = tenant.request("PUT", "/items/i", {"name": "n", "tags": ["b"]}, headers={"If-Match": '"7"'})
    assert_problem(response, 412, "precondition-failed")
    assert stored_tags(tenant.name, "a") == ["i"] and stored_tags(tenant.name, "b") == []
    response = tenant.request("PUT", "/items/i", {"name": "n", "tags": ["b"]}, headers={"If-Match": '"1"'})
    assert response.status_code == 200
    assert body(response)["version"] == 2
    assert stored_tags(tenant.name, "b") == ["i"]


def test_concurrent_tag_patches_leave_the_index_equal_to_the_item(tenant, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from tests.unit.test_idempotency_claims import _Serialised

    client = _Serialised(aws.dynamodb())  # each call atomic, as DynamoDB decides it
    monkeypatch.setattr(aws, "dynamodb", lambda: client)
    create(tenant, "i", "n", ["start"])
    tag_sets = [[f"t{n}", f"t{n + 1}"] for n in range(8)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = list(pool.map(lambda tags: tenant.request("PATCH", "/items/i", {"tags": tags}).status_code, tag_sets))
    assert set(statuses) <= {200, 409}
    item = body(tenant.request("GET", "/items/i"))
    assert item["version"] == 1 + statuses.count(200)
    indexed = {tag for tag in {"start", *[t for tags in tag_sets for t in tags]} if stored_tags(tenant.name, tag)}
    assert indexed == set(item["tags"])


def test_renaming_moves_the_item_in_the_name_index(tenant):
    create(tenant, "i", "Alpha")
    assert tenant.request("PATCH", "/items/i", {"name": "Omega"}).status_code == 200
    assert walk(tenant, "q=alp") == []
    assert walk(tenant, "q=OME") == ["i"]


def test_creating_over_an_expired_item_replaces_its_tag_records(tenant, monkeypatch):
    soon = clock.format_timestamp(clock.now() + timedelta(seconds=60))
    create(tenant, "i", "old", ["a", "b"], expires_at=soon)
    later(monkeypatch, 120)
    create(tenant, "i", "new", ["b", "c"])
    assert [stored_tags(tenant.name, t) for t in "abc"] == [[], ["i"], ["i"]]


def test_creating_over_an_expired_tagged_item_without_tags_removes_its_records(tenant, monkeypatch):
    soon = clock.format_timestamp(clock.now() + timedelta(seconds=60))
    create(tenant, "i", "old", ["a"], expires_at=soon)
    later(monkeypatch, 120)
    create(tenant, "i", "new")
    assert stored_tags(tenant.name, "a") == []
    assert walk(tenant, "q=new") == ["i"]


def test_cleanup_deletes_expired_items_with_their_tag_records(tenant, monkeypatch):
    from tests.unit.test_cleanup import run_cleanup

    soon = clock.format_timestamp(clock.now() + timedelta(seconds=60))
    create(tenant, "i", "n", ["a", "b"], expires_at=soon)
    create(tenant, "j", "n", [], expires_at=soon)
    later(monkeypatch, 120)
    run_cleanup()
    assert stored_tags(tenant.name, "a") == stored_tags(tenant.name, "b") == []
    found = aws.dynamodb().get_item(TableName=os.environ["TABLE_NAME"], Key=layout.item_key(tenant.name, "i"))
    assert "Item" not in found
