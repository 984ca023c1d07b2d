"""Imports in the browser: pick a CSV or JSON Lines file, upload it with progress, watch it finish.

These tests need the imports routes of API.md. While the API has none (the gateway answers
"no such route"), they are skipped; they run as soon as the routes exist.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import instrument_uploads, progress_values, row, sent_forms

FINISH_TIMEOUT = 60_000


@pytest.fixture
def imports_api(api):
    if api.route_missing("GET", "/imports"):
        pytest.skip("the API has no imports routes yet: GET /imports answers 'no such route'")
    return api


def open_imports(page, stack):
    instrument_uploads(page)
    with page.expect_response(lambda r: "/imports?" in r.url and r.request.method == "GET"):
        page.goto(stack.ui_url + "#imports")
    expect(page.get_by_role("heading", name="Import items")).to_be_visible()


def start_import(page, name, mime_type, content):
    page.get_by_test_id("import-file").set_input_files({"name": name, "mimeType": mime_type, "buffer": content})
    with (
        page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/imports")) as created,
        page.expect_request(lambda r: r.method == "POST" and "/imports" not in r.url) as stored,
    ):
        page.get_by_test_id("import-start").click()
    upload = created.value.json()["upload"]
    # Straight to storage, every presigned field first and the file last, under the name "file".
    assert stored.value.url == upload["url"]
    assert sent_forms(page)[-1] == [*upload["fields"], "file"]
    return page.get_by_test_id("import-current")


def test_csv_import_completes_with_row_errors_and_creates_the_valid_rows(imports_api, page, local_stack, shot):
    open_imports(page, local_stack)
    csv = "name,tags\nFirst,a|b\n,orphan\nThird,c\n"
    card = start_import(page, "items.csv", "text/csv", csv.encode())
    expect(page.get_by_test_id("import-format")).to_have_value("")  # the form is reset for the next file

    status = card.get_by_test_id("import-status")
    expect(status).to_have_attribute("data-status", "completed", timeout=FINISH_TIMEOUT)
    expect(card.get_by_test_id("import-rows-total")).to_have_text("3")
    expect(card.get_by_test_id("import-imported")).to_have_text("2")
    expect(card.get_by_test_id("import-failed")).to_have_text("1")
    errors = card.get_by_test_id("import-error")
    expect(errors).to_have_count(1)
    expect(errors.first.locator("td").first).to_have_text("3")
    shot("completed")

    values = progress_values(page)
    assert values and values[-1] == 100
    expect(page.get_by_test_id("import-row").first).to_contain_text("completed")

    card.get_by_role("link", name="Show the items").click()
    expect(row(page, "First")).to_be_visible()
    expect(row(page, "Third")).to_be_visible()
    names = sorted(item["name"] for item in imports_api.all_items())
    assert names == ["First", "Third"]
    first = next(item for item in imports_api.all_items() if item["name"] == "First")
    assert first["tags"] == ["a", "b"]


def test_jsonl_import_keeps_numbers_exact(imports_api, page, local_stack):
    open_imports(page, local_stack)
    lines = b'{"name": "J1", "data": {"n": 12345678901234567890}}\n\n{"name": "J2", "tags": ["x"]}\n'
    card = start_import(page, "rows.jsonl", "application/jsonl", lines)
    expect(card.get_by_test_id("import-status")).to_have_attribute("data-status", "completed", timeout=FINISH_TIMEOUT)
    expect(card.get_by_test_id("import-imported")).to_have_text("2")
    expect(card.get_by_test_id("import-failed")).to_have_text("0")
    expect(card.get_by_test_id("import-errors")).to_have_count(0)
    j1 = next(item for item in imports_api.all_items() if item["name"] == "J1")
    assert '"n":12345678901234567890' in imports_api.get(j1["id"]).text.replace(" ", "")


def test_a_file_level_problem_fails_the_import_and_says_why(imports_api, page, local_stack, shot):
    open_imports(page, local_stack)
    card = start_import(page, "bad.csv", "text/csv", b"name,colour\nA,red\n")
    expect(card.get_by_test_id("import-status")).to_have_attribute("data-status", "failed", timeout=FINISH_TIMEOUT)
    expect(card.get_by_test_id("import-errors")).to_be_visible()
    expect(card).to_contain_text("nothing was created")
    shot("failed")
    assert imports_api.all_items() == []


def test_a_file_is_required_and_its_format_detected(imports_api, page, local_stack):
    open_imports(page, local_stack)
    page.get_by_test_id("import-start").click()
    expect(page.get_by_test_id("import-file-error")).to_contain_text("Choose a CSV or JSON Lines file")
    expect(page.get_by_test_id("import-file")).to_be_focused()
    page.get_by_test_id("import-file").set_input_files({"name": "x.ndjson", "mimeType": "", "buffer": b'{"name":"n"}\n'})
    expect(page.get_by_test_id("import-format")).to_have_value("jsonl")
    page.get_by_test_id("import-file").set_input_files({"name": "notes.txt", "mimeType": "text/plain", "buffer": b"x"})
    page.get_by_test_id("import-format").select_option("")
    page.get_by_test_id("import-start").click()
    expect(page.get_by_test_id("import-file-error")).to_contain_text("Cannot tell the format")
    expect(page.get_by_test_id("import-format")).to_be_focused()


def test_history_and_the_card_show_the_file_name_and_the_url_keeps_the_import(imports_api, page, local_stack, shot):
    open_imports(page, local_stack)
    card = start_import(page, "groceries.csv", "text/csv", b"name\nMilk\n")
    expect(card.get_by_test_id("import-status")).to_have_attribute("data-status", "completed", timeout=FINISH_TIMEOUT)
    expect(card.get_by_test_id("import-name")).to_have_text("groceries.csv")
    expect(page).to_have_url(re.compile(r"#/imports/[0-9A-Z]{26}$"))
    expect(page.get_by_test_id("import-row").first.get_by_test_id("import-open")).to_have_text("groceries.csv")
    shot("history")
    shown = page.url.rsplit("/", 1)[-1]
    stored = imports_api.request("GET", f"/imports/{shown}").json()
    assert stored["filename"] == "groceries.csv"  # kept by the API: any browser shows it
    page.reload()
    expect(card.get_by_test_id("import-name")).to_have_text("groceries.csv")
    expect(card.get_by_test_id("import-imported")).to_have_text("1")


def test_row_errors_name_the_column_and_show_the_value(imports_api, page, local_stack, shot):
    open_imports(page, local_stack)
    long_tag = "t" * 51
    csv = f'name,tags,expires_at\nGood,a,\n,b,\nTagged,ok|{long_tag},\nOld,c,2001-01-01T00:00:00Z\n'
    card = start_import(page, "rows.csv", "text/csv", csv.encode())
    expect(card.get_by_test_id("import-status")).to_have_attribute("data-status", "completed", timeout=FINISH_TIMEOUT)
    errors = card.get_by_test_id("import-error")
    expect(errors).to_have_count(3)
    expect(card.get_by_test_id("import-errors").locator("thead")).to_contain_text("Column")
    blank = errors.filter(has=page.locator("td", has_text="3"))
    expect(blank.first.get_by_test_id("import-error-column")).to_have_text("name")
    expect(blank.first.get_by_test_id("import-error-value")).to_have_text("(empty)")
    tagged = errors.filter(has_text=long_tag)
    expect(tagged.get_by_test_id("import-error-column")).to_have_text("tags")
    expect(tagged.get_by_test_id("import-error-detail")).not_to_contain_text("/tags")
    old = errors.filter(has_text="2001-01-01T00:00:00Z")
    expect(old.get_by_test_id("import-error-column")).to_have_text("expires_at")
    for detail in card.get_by_test_id("import-error-detail").all_text_contents():
        assert not detail.startswith("/"), detail
    # "Line" is never broken inside the word, even on a narrow screen.
    page.set_viewport_size({"width": 320, "height": 700})
    header = card.get_by_test_id("import-errors").locator("th", has_text="Line")
    one_line = "(th) => { const r = document.createRange(); r.selectNodeContents(th); return r.getClientRects().length; }"
    assert header.evaluate(one_line) == 1
    shot("row-errors")


def test_a_failed_import_explains_itself(imports_api, page, local_stack, shot):
    open_imports(page, local_stack)
    card = start_import(page, "colours.csv", "text/csv", b"name,colour\nA,red\n")
    expect(card.get_by_test_id("import-status")).to_have_attribute("data-status", "failed", timeout=FINISH_TIMEOUT)
    failure = card.get_by_test_id("import-failure")
    expect(failure).to_contain_text("nothing was created")
    expect(failure).to_contain_text("Why:")
    expect(failure).to_contain_text("colour")
    expect(failure).to_contain_text("The header may only use the columns name, id, description, tags, data and expires_at")
    expect(failure).to_contain_text("Correct the file and start a new import")
    expect(page.get_by_test_id("toast").filter(has_text="The import of colours.csv failed")).to_have_attribute("data-kind", "error")
    shot("failed")
