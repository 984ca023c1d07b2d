"""Finding items from the table: the search box (``q``), tag chips (``tag``) and sortable column
headers (``sort``/``order``), each kept in the URL (docs/API.md "Finding items")."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser.conftest import open_app, row


def names(page) -> list[str]:
    expect(page.get_by_test_id("item-list")).to_have_attribute("aria-busy", "false")
    return page.get_by_test_id("item-open").all_text_contents()


def test_the_search_box_finds_names_by_prefix(page, local_stack, api, shot):
    for name in ("Receipt 1", "recipe", "Train", "Rec room", "Other"):
        api.create(name)
    open_app(page, local_stack)
    with page.expect_response(lambda r: "/items?" in r.url and "q=rec" in r.url) as answered:
        page.get_by_test_id("search").fill("rec")
    assert answered.value.status == 200
    expect(page).to_have_url(re.compile(r"#/items\?q=rec"))
    assert names(page) == ["Rec room", "Receipt 1", "recipe"]  # by name, case-folded
    expect(page.locator("thead th.col-name")).to_have_attribute("aria-sort", re.compile("ascending|descending"))
    shot("search")
    page.get_by_test_id("search").fill("zzz")
    expect(page.get_by_test_id("list-empty")).to_have_text("No item names start with “zzz”.")

    # Reload keeps the search.
    page.goto(local_stack.ui_url + "#/items?q=tra")
    expect(page.get_by_test_id("search")).to_have_value("tra")
    expect(row(page, "Train")).to_be_visible()
    assert names(page) == ["Train"]


def test_a_tag_chip_filters_the_list_and_can_be_cleared(page, local_stack, api, shot):
    api.create("Flight", tags=["travel", "work"])
    api.create("Hotel", tags=["travel"])
    api.create("Laptop", tags=["work"])
    open_app(page, local_stack)
    with page.expect_response(lambda r: "/items?" in r.url and "tag=travel" in r.url) as answered:
        row(page, "Hotel").get_by_role("button", name="Show items tagged travel").click()
    assert answered.value.status == 200
    expect(page).to_have_url(re.compile(r"#/items\?tag=travel"))
    assert sorted(names(page)) == ["Flight", "Hotel"]
    expect(page.get_by_test_id("active-filter")).to_contain_text("Tagged travel")
    shot("tag")

    page.go_back()
    expect(row(page, "Laptop")).to_be_visible()
    page.go_forward()
    expect(row(page, "Laptop")).to_have_count(0)
    page.get_by_test_id("clear-tag").click()
    expect(row(page, "Laptop")).to_be_visible()
    expect(page.get_by_test_id("active-filter")).to_be_hidden()


def test_column_headers_sort_by_name_and_by_last_change(page, local_stack, api):
    banana = api.create("banana")
    api.create("Apple")
    api.create("cherry")
    api.request("PATCH", f"/items/{banana['id']}", json={"description": "changed last"})
    open_app(page, local_stack)

    with page.expect_response(lambda r: "sort=name" in r.url and "order=asc" in r.url):
        page.get_by_test_id("sort-name").click()
    assert names(page) == ["Apple", "banana", "cherry"]
    expect(page.locator("thead th.col-name")).to_have_attribute("aria-sort", "ascending")
    expect(page).to_have_url(re.compile(r"sort=name"))
    with page.expect_response(lambda r: "sort=name" in r.url and "order=desc" in r.url):
        page.get_by_test_id("sort-name").click()
    assert names(page) == ["cherry", "banana", "Apple"]

    with page.expect_response(lambda r: "sort=updated_at" in r.url and "order=desc" in r.url):
        page.get_by_test_id("sort-updated_at").click()
    assert names(page)[0] == "banana"
    expect(page.locator("th.col-updated")).to_have_attribute("aria-sort", "descending")

    # The URL carries the sort: reload and a shared link show the same order.
    page.reload()
    assert names(page)[0] == "banana"
