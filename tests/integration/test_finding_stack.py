"""Finding items through the real local stack (`make run`): a tenant of 1,000 items, seeded through
the import path, walked page by page in every finding mode, both orders."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.test_events import Client, run_import

WORDS = ["Receipt", "receipt", "Invoice", "Ticket", "Récépissé"]


@pytest.fixture(scope="module")
def seeded(local_stack) -> tuple[Client, list[dict[str, Any]]]:
    client = Client(local_stack, "beta")
    rows = []
    for n in range(1000):
        tags = ["find"] + (["travel"] if n % 3 == 0 else []) + (["home"] if n % 5 == 0 else [])
        rows.append(json.dumps({"id": f"f{n:04d}", "name": f"{WORDS[n % len(WORDS)]} {n}", "tags": tags}))
    result = run_import(client, "jsonl", ("\n".join(rows) + "\n").encode())
    assert (result["status"], result["rows_imported"]) == ("completed", 1000), result
    return client, client.all_items()  # the tenant as it is (other tests may have added a few)


def walk(client: Client, query: str, limit: int) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    page = client.call("GET", f"/items?{query}&limit={limit}", expect=200)
    seen += page["items"]
    while page["next_cursor"]:
        page = client.call("GET", f"/items?{query}&limit={limit}&cursor={page['next_cursor']}", expect=200)
        seen += page["items"]
    return seen


def _name_order(item: dict[str, Any]) -> tuple[str, str]:
    return item["name"].casefold(), item["id"]


MODES = {
    "tag=find": (lambda item: "find" in item["tags"], lambda item: item["id"]),
    "tag=travel": (lambda item: "travel" in item["tags"], lambda item: item["id"]),
    "tag=home": (lambda item: "home" in item["tags"], lambda item: item["id"]),
    "q=REC": (lambda item: item["name"].casefold().startswith("rec"), _name_order),
    "q=r%C3%89C": (lambda item: item["name"].casefold().startswith("réc"), _name_order),
    "sort=name": (lambda item: True, _name_order),
    "sort=updated_at": (lambda item: True, lambda item: (item["updated_at"], item["id"])),
    "sort=id": (lambda item: True, lambda item: item["id"]),
}


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("query", list(MODES))
def test_each_mode_walks_every_matching_item_exactly_once(seeded, query, order):
    client, items = seeded
    matches, order_key = MODES[query]
    expected = sorted((item for item in items if matches(item)), key=order_key, reverse=order == "desc")
    assert len(expected) >= 200  # every mode has plenty to page through
    seen = walk(client, f"{query}&order={order}", 100)
    assert [item["id"] for item in seen] == [item["id"] for item in expected]


def test_a_small_page_size_walks_the_same(seeded):
    client, items = seeded
    seen = walk(client, "tag=travel", 7)
    assert [item["id"] for item in seen] == sorted(item["id"] for item in items if "travel" in item["tags"])


def test_a_cursor_belongs_to_its_query_and_tenant(seeded, local_stack):
    client, _ = seeded
    cursor = client.call("GET", "/items?tag=travel&limit=5", expect=200)["next_cursor"]
    assert client.call("GET", f"/items?tag=home&cursor={cursor}", expect=400)["type"] == "/problems/bad-request"
    other = Client(local_stack, "alpha")
    assert other.call("GET", f"/items?tag=travel&cursor={cursor}", expect=400)["errors"][0]["pointer"] == "/query/cursor"
