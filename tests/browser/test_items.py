"""Managing items in the browser: create, edit, field errors, delete, paging, order, conflicts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from playwright.sync_api import expect

from tests.browser.conftest import new_item, open_app, row


def test_create_item_shows_it_in_the_list(page, local_stack, api, shot):
    open_app(page, local_stack)
    # A wide screen starts with the form for a new item beside the list (a phone with the list).
    expect(page.get_by_test_id("item-form")).to_be_visible()
    new_item(page)
    page.get_by_test_id("item-name").fill("Train ticket")
    page.get_by_test_id("item-description").fill("Paris to Lyon")
    page.get_by_test_id("item-tags").fill("travel, receipts, travel")
    page.get_by_test_id("item-data").fill('{"amount": 12345678901234567890.25, "currency": "EUR"}')
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/items")) as sent:
        page.get_by_test_id("item-save").click()
    assert sent.value.headers.get("idempotency-key")

    created = row(page, "Train ticket")
    expect(created).to_be_visible()
    expect(created).to_contain_text("travel")
    expect(page.get_by_test_id("status")).to_contain_text("Created “Train ticket”")
    expect(page.get_by_test_id("item-version")).to_have_text("version 1")
    shot("created")

    (stored,) = api.all_items()
    assert stored["name"] == "Train ticket"
    assert stored["description"] == "Paris to Lyon"
    assert stored["tags"] == ["travel", "receipts"]
    raw = api.get(stored["id"]).text
    assert '"amount":12345678901234567890.25' in raw.replace(" ", "")


def test_edit_saves_with_if_match_and_keeps_exact_numbers(page, local_stack, api, shot):
    item = api.create("Invoice", data={"total": 12345678901234567890, "rate": 0.1}, tags=["work"])
    open_app(page, local_stack)
    row(page, "Invoice").get_by_test_id("item-open").click()
    expect(page.get_by_test_id("item-name")).to_have_value("Invoice")
    expect(page.get_by_test_id("item-name")).to_be_focused()
    expect(page.get_by_test_id("item-data")).to_have_value('{\n  "total": 12345678901234567890,\n  "rate": 0.1\n}')
    expires = (datetime.now() + timedelta(days=30)).replace(microsecond=0)
    page.get_by_test_id("item-name").fill("Invoice 2026-11")
    page.get_by_test_id("item-expires").fill(expires.strftime("%Y-%m-%dT%H:%M:%S"))
    with page.expect_request(lambda r: r.method == "PUT") as sent:
        page.get_by_test_id("item-save").click()
    assert sent.value.headers["if-match"] == '"1"'
    expect(page.get_by_test_id("item-version")).to_have_text("version 2")
    expect(row(page, "Invoice 2026-11")).to_be_visible()
    shot("saved")

    response = api.get(item["id"])
    assert response.json()["version"] == 2
    assert response.json()["tags"] == ["work"]
    assert '"total":12345678901234567890' in response.text.replace(" ", "")
    assert '"rate":0.1' in response.text.replace(" ", "")
    stored_expiry = datetime.fromisoformat(response.json()["expires_at"].replace("Z", "+00:00"))
    assert stored_expiry == expires.astimezone(UTC)


def test_server_field_errors_appear_inline_next_to_their_fields(page, local_stack, api, console, shot):
    console.allow(r"status of 422")
    open_app(page, local_stack)
    new_item(page)
    page.get_by_test_id("item-name").fill("Huge number")
    page.get_by_test_id("item-data").fill('{"n": 1e200}')  # valid JSON, but more than DynamoDB holds
    with page.expect_response(lambda r: r.request.method == "POST") as answered:
        page.get_by_test_id("item-save").click()
    assert answered.value.status == 422

    expect(page.get_by_test_id("error-data")).to_contain_text("Data at /n:")
    expect(page.get_by_test_id("error-name")).to_be_hidden()
    data = page.get_by_test_id("item-data")
    expect(data).to_be_focused()
    expect(data).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_test_id("form-error")).to_contain_text("1 problem needs")
    shot("field-errors")
    assert api.all_items() == []

    # Fixing the field clears its error and saves.
    data.fill('{"n": 2}')
    page.get_by_test_id("item-save").click()
    expect(row(page, "Huge number")).to_be_visible()
    expect(page.get_by_test_id("error-data")).to_be_hidden()
    expect(data).not_to_have_attribute("aria-invalid", "true")


def test_client_side_checks_explain_before_anything_is_sent(page, local_stack, api, shot):
    open_app(page, local_stack)
    new_item(page)
    sent = []
    page.on("request", lambda r: sent.append(r) if r.method == "POST" else None)
    page.get_by_test_id("item-id").fill("my receipt!")
    page.get_by_test_id("item-name").fill("   ")
    page.get_by_test_id("item-description").fill("d" * 4001)
    page.get_by_test_id("item-tags").fill("ok, " + "x" * 51)
    page.get_by_test_id("item-expires").fill("2020-01-01T10:00:00")
    page.get_by_test_id("item-save").click()

    expect(page.get_by_test_id("error-id")).to_contain_text("may only use letters (A–Z, a–z), digits, “-” and “_”")
    expect(page.get_by_test_id("error-id")).not_to_contain_text("^[")  # words, not the pattern
    expect(page.get_by_test_id("error-name")).to_have_text("Name is required")
    expect(page.get_by_test_id("error-description")).to_contain_text("4001 characters, at most 4000")
    expect(page.get_by_test_id("error-tags")).to_contain_text("Tag 2 (“xxxxxxxx")
    expect(page.get_by_test_id("error-tags")).to_contain_text("longer than 50 characters")
    expect(page.get_by_test_id("error-expires_at")).to_contain_text("must be in the future")
    expect(page.get_by_test_id("form-error")).to_contain_text("5 problems")
    expect(page.get_by_test_id("item-id")).to_be_focused()
    shot("client-checks")

    page.get_by_test_id("item-name").fill("n" * 201)
    page.get_by_test_id("item-tags").fill(", ".join(f"t{n}" for n in range(21)))
    page.get_by_test_id("item-save").click()
    expect(page.get_by_test_id("error-name")).to_contain_text("201 characters, at most 200")
    expect(page.get_by_test_id("error-tags")).to_contain_text("too many: 21, at most 20")
    assert sent == []
    assert api.all_items() == []


def test_data_that_is_not_a_json_object_is_refused_before_sending(page, local_stack, api):
    open_app(page, local_stack)
    new_item(page)
    page.get_by_test_id("item-name").fill("Broken data")
    page.get_by_test_id("item-data").fill('{"amount": 12.5,}')
    sent = []
    page.on("request", lambda r: sent.append(r) if r.method == "POST" else None)
    page.get_by_test_id("item-save").click()
    expect(page.get_by_test_id("error-data")).to_contain_text("is not valid JSON")
    expect(page.get_by_test_id("item-data")).to_be_focused()
    page.get_by_test_id("item-data").fill("[1, 2]")
    page.get_by_test_id("item-save").click()
    expect(page.get_by_test_id("error-data")).to_contain_text("must be a JSON object")
    assert sent == []


def test_duplicate_id_is_reported_on_the_id_field(page, local_stack, api, console):
    console.allow(r"status of 409")
    api.create("Existing", id="receipt-1")
    open_app(page, local_stack)
    new_item(page)
    page.get_by_test_id("item-id").fill("receipt-1")
    page.get_by_test_id("item-name").fill("Another")
    page.get_by_test_id("item-save").click()
    expect(page.get_by_test_id("error-id")).to_be_visible()
    expect(page.get_by_test_id("item-id")).to_be_focused()
    assert [item["name"] for item in api.all_items()] == ["Existing"]


def test_delete_asks_for_confirmation(page, local_stack, api, shot):
    keep = api.create("Keep me")
    doomed = api.create("Delete me")
    open_app(page, local_stack)

    delete_button = row(page, "Delete me").get_by_test_id("item-delete")
    delete_button.click()
    dialog = page.get_by_test_id("confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("“Delete me”")
    expect(page.get_by_test_id("confirm-cancel")).to_be_focused()
    shot("confirm")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(delete_button).to_be_focused()
    assert api.get(doomed["id"]).status_code == 200

    delete_button.click()
    with page.expect_request(lambda r: r.method == "DELETE") as sent:
        page.get_by_test_id("confirm-delete").click()
    assert sent.value.headers["if-match"] == '"1"'
    expect(row(page, "Delete me")).to_have_count(0)
    expect(row(page, "Keep me")).to_be_visible()
    expect(page.get_by_test_id("toast").filter(has_text="Deleted “Delete me”")).to_be_visible()
    assert api.get(doomed["id"]).status_code == 404
    assert api.get(keep["id"]).status_code == 200


def test_paging_next_previous_and_order(page, local_stack, api, shot):
    for number in range(1, 26):
        api.create(f"Item {number:02d}")
    open_app(page, local_stack)
    with page.expect_response(lambda r: "limit=10" in r.url):
        page.get_by_test_id("page-size").select_option("10")

    def names() -> list[str]:
        expect(page.get_by_test_id("item-list")).to_have_attribute("aria-busy", "false")
        return [text.removeprefix("Edit ") for text in page.get_by_test_id("item-open").all_text_contents()]

    newest = [f"Item {n:02d}" for n in range(25, 0, -1)]
    next_page, previous_page = page.get_by_test_id("next-page"), page.get_by_test_id("previous-page")
    label = page.get_by_test_id("page-label")
    expect(previous_page).to_be_disabled()
    assert names() == newest[:10]
    expect(label).to_have_text("1–10")
    next_page.click()
    expect(label).to_have_text("11–20")
    expect(page.get_by_test_id("page-label-bottom")).to_have_text("11–20")
    assert names() == newest[10:20]
    shot("page-2")
    next_page.click()
    expect(label).to_have_text("21–25")
    assert names() == newest[20:]
    expect(next_page).to_be_disabled()
    expect(page.get_by_test_id("next-page-bottom")).to_be_disabled()
    previous_page.click()
    expect(label).to_have_text("11–20")
    assert names() == newest[10:20]
    page.get_by_test_id("previous-page-bottom").click()
    expect(label).to_have_text("1–10")
    assert names() == newest[:10]
    expect(previous_page).to_be_disabled()

    with page.expect_response(lambda r: "order=asc" in r.url):
        page.get_by_test_id("order").select_option("asc")
    assert names() == [f"Item {n:02d}" for n in range(1, 11)]
    assert "order=asc" in page.url and "limit=10" in page.url
    next_page.click()
    expect(label).to_have_text("11–20")
    assert names() == [f"Item {n:02d}" for n in range(11, 21)]


def test_conflict_shows_the_newer_version_and_reapplies_my_change(page, local_stack, api, console, shot):
    console.allow(r"status of 412")
    item = api.create("Draft", description="first words", tags=["a"])
    open_app(page, local_stack)
    row(page, "Draft").get_by_test_id("item-open").click()
    expect(page.get_by_test_id("item-name")).to_have_value("Draft")

    # Someone else saves a new description meanwhile.
    theirs = api.request("PATCH", f"/items/{item['id']}", json={"description": "their words"})
    assert theirs.json()["version"] == 2

    page.get_by_test_id("item-name").fill("Final title")
    with page.expect_response(lambda r: r.request.method == "PUT") as answered:
        page.get_by_test_id("item-save").click()
    assert answered.value.status == 412
    panel = page.get_by_test_id("conflict")
    expect(panel).to_be_visible()
    expect(panel).to_contain_text("version 2")
    expect(panel).to_contain_text("their words")
    expect(panel).to_contain_text("Final title")
    expect(page.get_by_role("heading", name="Someone else saved this item first")).to_be_focused()
    shot("conflict")

    page.get_by_test_id("conflict-reapply").click()
    expect(panel).to_be_hidden()
    expect(page.get_by_test_id("item-name")).to_have_value("Final title")
    expect(page.get_by_test_id("item-description")).to_have_value("their words")
    expect(page.get_by_test_id("item-save")).to_be_focused()
    with page.expect_request(lambda r: r.method == "PUT") as sent:
        page.get_by_test_id("item-save").click()
    assert sent.value.headers["if-match"] == '"2"'
    expect(page.get_by_test_id("item-version")).to_have_text("version 3")

    stored = api.get(item["id"]).json()
    assert (stored["name"], stored["description"], stored["version"]) == ("Final title", "their words", 3)


def test_conflict_can_discard_my_change(page, local_stack, api, console):
    console.allow(r"status of 412")
    item = api.create("Shared")
    open_app(page, local_stack)
    row(page, "Shared").get_by_test_id("item-open").click()
    expect(page.get_by_test_id("item-name")).to_have_value("Shared")
    api.request("PUT", f"/items/{item['id']}", json={"name": "Renamed elsewhere"})
    page.get_by_test_id("item-name").fill("My rename")
    page.get_by_test_id("item-save").click()
    page.get_by_test_id("conflict-discard").click()
    expect(page.get_by_test_id("conflict")).to_be_hidden()
    expect(page.get_by_test_id("item-name")).to_have_value("Renamed elsewhere")
    expect(page.get_by_test_id("item-version")).to_have_text("version 2")
    assert api.get(item["id"]).json()["name"] == "Renamed elsewhere"
