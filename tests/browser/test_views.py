"""The list as a table, state in the URL, the editor panel, loading/empty/error states and toasts."""

from __future__ import annotations

import json
import re
import time

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import new_item, open_app, row


def names(page) -> list[str]:
    expect(page.get_by_test_id("item-list")).to_have_attribute("aria-busy", "false")
    return [text.removeprefix("Edit ") for text in page.get_by_test_id("item-open").all_text_contents()]


def slow_list(page, seconds: float) -> None:
    """Hold every list request for ``seconds`` before it goes to the API."""

    def hold(route):
        time.sleep(seconds)
        route.continue_()

    page.route(lambda url: "/items?" in url, hold)


def test_double_clicking_next_moves_one_page_and_labels_it_right(page, local_stack, api, shot):
    for number in range(1, 26):
        api.create(f"Item {number:02d}")
    open_app(page, local_stack, "#/items?limit=10&order=asc")
    assert names(page) == [f"Item {n:02d}" for n in range(1, 11)]
    slow_list(page, 0.6)
    requests = []
    page.on("request", lambda r: requests.append(r.url) if "/items?" in r.url else None)
    page.get_by_test_id("next-page").dblclick()
    # While the page loads, both pagers are disabled and the rows are placeholders.
    expect(page.get_by_test_id("next-page")).to_be_disabled()
    expect(page.get_by_test_id("next-page-bottom")).to_be_disabled()
    expect(page.get_by_test_id("previous-page")).to_be_disabled()
    expect(page.locator("#item-list tr.skeleton")).to_have_count(10)
    expect(page.get_by_test_id("list-empty")).to_be_hidden()
    shot("loading")
    expect(page.get_by_test_id("page-label")).to_have_text("11–20")
    assert names(page) == [f"Item {n:02d}" for n in range(11, 21)]
    assert len(requests) == 1


def test_paging_from_the_bottom_scrolls_back_to_the_top(page, local_stack, api):
    for number in range(1, 31):
        api.create(f"Item {number:02d}")
    open_app(page, local_stack)
    page.get_by_test_id("next-page-bottom").scroll_into_view_if_needed()
    assert page.evaluate("window.scrollY") > 200
    page.get_by_test_id("next-page-bottom").click()
    expect(page.get_by_test_id("page-label")).to_have_text("21–30")
    expect(page.get_by_test_id("page-label")).to_be_in_viewport()
    expect(page.locator("#items-heading")).to_be_in_viewport()


def test_reload_keeps_the_page_and_the_open_item_and_back_walks_them(page, local_stack, api, shot):
    for number in range(1, 16):
        api.create(f"Item {number:02d}")
    open_app(page, local_stack, "#/items?order=asc&limit=10")
    page.get_by_test_id("next-page").click()
    expect(page.get_by_test_id("page-label")).to_have_text("11–15")

    with page.expect_response(lambda r: "/items?" in r.url):
        page.reload()
    expect(page.get_by_test_id("page-label")).to_have_text("11–15")
    assert names(page) == [f"Item {n:02d}" for n in range(11, 16)]
    expect(page.get_by_test_id("order")).to_have_value("asc")
    expect(page.get_by_test_id("page-size")).to_have_value("10")

    row(page, "Item 12").get_by_test_id("item-open").click()
    expect(page.get_by_test_id("item-name")).to_have_value("Item 12")
    item_id = next(item["id"] for item in api.all_items() if item["name"] == "Item 12")
    assert page.url.endswith(f"#/items/{item_id}?order=asc&limit=10")
    page.reload()
    expect(page.get_by_test_id("editor")).to_be_visible()
    expect(page.get_by_test_id("item-name")).to_have_value("Item 12")
    expect(page.get_by_test_id("page-label")).to_have_text("11–15")
    shot("reloaded")

    page.go_back()
    expect(page.get_by_test_id("editor")).to_be_hidden()
    expect(page.get_by_test_id("page-label")).to_have_text("11–15")
    page.go_forward()
    expect(page.get_by_test_id("item-name")).to_have_value("Item 12")


def test_a_link_to_an_item_opens_it_and_an_unknown_one_says_so(page, local_stack, api, console):
    console.allow(r"status of 404")
    item = api.create("Linked", tags=["x"])
    open_app(page, local_stack, f"#/items/{item['id']}")
    expect(page.get_by_test_id("editor")).to_be_visible()
    expect(page.get_by_test_id("item-name")).to_have_value("Linked")
    expect(row(page, "Linked")).to_have_attribute("aria-current", "true")

    page.goto(local_stack.ui_url + "#/items/no-such-item")
    expect(page.get_by_test_id("toast").filter(has_text="There is no item “no-such-item”")).to_be_visible()
    expect(page.get_by_test_id("editor")).to_be_hidden()
    assert page.url.endswith("#/items")


def test_the_editor_is_a_side_panel_beside_the_list(page, local_stack, api):
    for number in range(1, 21):
        api.create(f"Item {number:02d}")
    open_app(page, local_stack)
    page.get_by_test_id("next-page-bottom").scroll_into_view_if_needed()
    row(page, "Item 01").get_by_test_id("item-open").click()
    expect(page.get_by_test_id("item-name")).to_have_value("Item 01")
    editor = page.get_by_test_id("editor").bounding_box()
    table = page.locator(".item-table").bounding_box()
    assert editor and table
    assert editor["x"] >= table["x"] + table["width"]  # beside the list, not below it
    assert editor["height"] <= 900  # its own scroll, never as long as the list
    expect(page.get_by_test_id("item-name")).to_be_in_viewport()  # in view, wherever the list is scrolled to
    expect(page.get_by_test_id("open-settings")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("editor")).to_be_hidden()
    expect(row(page, "Item 01").get_by_test_id("item-open")).to_be_focused()


@pytest.mark.viewport(375, 740)
def test_on_a_phone_the_editor_is_a_full_screen_and_rows_are_compact(page, local_stack, api, shot):
    for number in range(1, 6):
        api.create(f"A rather long item name that has to fit a phone {number}", tags=["one", "two"])
    open_app(page, local_stack)
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    heights = [box["height"] for box in (r.bounding_box() for r in page.get_by_test_id("item-row").all()) if box]
    assert heights and max(heights) <= 48
    shot("phone-list")
    page.get_by_test_id("item-open").first.click()
    expect(page.get_by_test_id("item-version")).to_be_visible()
    editor = page.get_by_test_id("editor").bounding_box()
    assert editor == {"x": 0, "y": 0, "width": 375, "height": 740}
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    shot("phone-editor")


def test_unsaved_edits_are_guarded(page, local_stack, api, shot):
    first = api.create("First")
    api.create("Second")
    open_app(page, local_stack)
    row(page, "First").get_by_test_id("item-open").click()
    expect(page.get_by_test_id("item-name")).to_have_value("First")
    page.get_by_test_id("item-name").fill("First, edited")

    # The back button asks; Cancel keeps the edit, the item and its URL.
    page.go_back()
    dialog = page.get_by_test_id("confirm-dialog")
    expect(dialog).to_contain_text("Discard unsaved changes?")
    shot("guard")
    page.get_by_test_id("confirm-cancel").click()
    expect(page.get_by_test_id("item-name")).to_have_value("First, edited")
    expect(page).to_have_url(re.compile(rf"#/items/{first['id']}$"))

    # So does opening another item.
    row(page, "Second").get_by_test_id("item-open").click()
    expect(dialog).to_be_visible()
    page.get_by_test_id("confirm-cancel").click()
    expect(page.get_by_test_id("item-name")).to_have_value("First, edited")
    expect(page).to_have_url(re.compile(rf"#/items/{first['id']}$"))

    # So do Close and New item; confirming discards.
    page.get_by_test_id("close-editor").click()
    page.get_by_test_id("confirm-cancel").click()
    page.get_by_test_id("new-item").click()
    page.get_by_test_id("confirm-delete").click()
    expect(page.get_by_test_id("item-name")).to_have_value("")
    expect(page.get_by_role("heading", name="New item")).to_be_visible()
    assert api.get(first["id"]).json()["name"] == "First"

    # Leaving the page with unsaved edits is guarded by the browser's own prompt.
    page.get_by_test_id("item-name").fill("Draft")
    prompts = []
    page.on("dialog", lambda d: (prompts.append(d.type), d.dismiss()))
    page.evaluate("() => { location.reload(); }")
    page.wait_for_timeout(500)
    assert prompts == ["beforeunload"]
    # A saved item leaves nothing to guard.
    page.get_by_test_id("item-save").click()
    expect(row(page, "Draft")).to_be_visible()
    row(page, "Second").get_by_test_id("item-open").click()
    expect(page.get_by_test_id("item-name")).to_have_value("Second")


def test_a_failed_first_load_says_so_and_retry_recovers(page, local_stack, api, console, shot):
    console.allow(r"status of 403")
    api.create("Survivor")
    failing = {"on": True}

    def answer(route):
        if not failing["on"]:
            route.continue_()
            return
        time.sleep(0.5)
        route.fulfill(
            status=403,
            content_type="application/problem+json",
            body=json.dumps({"type": "/problems/forbidden", "title": "Forbidden", "status": 403, "detail": "no"}),
            headers={"Access-Control-Allow-Origin": local_stack.ui_url.rstrip("/")},
        )

    page.route(lambda url: "/items?" in url, answer)
    page.goto(local_stack.ui_url)
    # Loading: placeholders, never "No items yet".
    expect(page.locator("#item-list tr.skeleton")).to_have_count(20)
    expect(page.get_by_test_id("list-empty")).to_be_hidden()
    failed = page.get_by_test_id("list-error")
    expect(failed).to_contain_text("Couldn’t load items.")
    expect(page.get_by_test_id("error-banner")).to_contain_text("Not authorised")
    expect(page.get_by_test_id("list-empty")).to_be_hidden()
    expect(page.get_by_text("No items yet")).to_have_count(0)
    expect(page.locator("#item-list tr")).to_have_count(0)
    shot("failed")

    failing["on"] = False
    page.get_by_test_id("list-retry").click()
    expect(row(page, "Survivor")).to_be_visible()
    expect(failed).to_be_hidden()
    expect(page.get_by_test_id("error-banner")).to_be_hidden()


def test_an_empty_list_says_so_only_once_loaded(page, local_stack, api):
    slow_list(page, 0.5)
    page.goto(local_stack.ui_url)
    expect(page.locator("#item-list tr.skeleton").first).to_be_visible()
    expect(page.get_by_test_id("list-empty")).to_be_hidden()
    expect(page.get_by_test_id("list-empty")).to_have_text("No items yet. Create one with “New item”.")
    expect(page.locator("#item-list tr.skeleton")).to_have_count(0)


def test_space_for_a_page_is_reserved_so_nothing_below_moves(page, local_stack, api):
    for number in range(1, 21):
        api.create(f"Item {number:02d}")
    slow_list(page, 0.5)
    page.goto(local_stack.ui_url)
    expect(page.locator("#item-list tr.skeleton").first).to_be_visible()
    before = page.get_by_test_id("next-page-bottom").bounding_box()
    expect(page.locator("#item-list tr.item-row")).to_have_count(20)
    after = page.get_by_test_id("next-page-bottom").bounding_box()
    assert before and after and before["y"] == after["y"]


def test_toasts_stack_are_coloured_and_dismissible(page, local_stack, api, shot):
    open_app(page, local_stack)
    for name in ("One", "Two"):
        new_item(page)
        page.get_by_test_id("item-name").fill(name)
        page.get_by_test_id("item-save").click()
        expect(row(page, name)).to_be_visible()
    toasts = page.get_by_test_id("toast")
    expect(toasts).to_have_count(2)
    expect(toasts.nth(0)).to_contain_text("Created “One”")
    expect(toasts.nth(1)).to_contain_text("Created “Two”")
    expect(toasts.nth(0)).to_have_attribute("data-kind", "success")
    first, second = toasts.nth(0).bounding_box(), toasts.nth(1).bounding_box()
    assert first and second and first["y"] + first["height"] <= second["y"]  # stacked, not on top
    shot("toasts")
    toasts.nth(0).get_by_role("button", name="Dismiss message").click()
    expect(toasts).to_have_count(1)
    expect(toasts.first).to_contain_text("Created “Two”")


def test_saving_an_item_deleted_meanwhile_keeps_the_values_without_asking(page, local_stack, api, console):
    console.allow(r"status of 404")
    item = api.create("Gone soon")
    open_app(page, local_stack, f"#/items/{item['id']}")
    expect(page.get_by_test_id("item-name")).to_have_value("Gone soon")
    api.request("DELETE", f"/items/{item['id']}")
    page.get_by_test_id("item-name").fill("Still wanted")
    page.get_by_test_id("item-save").click()
    expect(page.get_by_test_id("form-error")).to_contain_text("deleted in the meantime")
    expect(page.get_by_role("heading", name="New item")).to_be_visible()
    expect(page.get_by_test_id("item-name")).to_have_value("Still wanted")
    expect(page.get_by_test_id("item-id")).to_have_value(item["id"])
    expect(page.get_by_test_id("confirm-dialog")).to_be_hidden()
    expect(page).to_have_url(re.compile(r"#/items$"))
