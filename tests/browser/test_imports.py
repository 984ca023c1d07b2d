"""Imports in the browser: pick a CSV or JSON Lines file, upload it with progress, watch it finish.

These tests need the imports routes of API.md. While the API has none (the gateway answers
"no such route"), they are skipped; they run as soon as the routes exist.
"""

from __future__ import annotations

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
