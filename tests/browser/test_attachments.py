"""Attachments in the browser: upload with progress straight to storage, live status, download.

These tests need the attachments routes of API.md. While the API has none (the gateway answers
"no such route"), they are skipped; they run as soon as the routes exist.
"""

from __future__ import annotations

import json
import re
import time

import pytest
import requests
from playwright.sync_api import expect

from tests.browser.conftest import instrument_uploads, open_app, progress_values, row, sent_forms, throttle_uploads

# A valid 1x1 PNG, padded so that a throttled upload takes a few seconds.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)
STATUS_TIMEOUT = 30_000


@pytest.fixture
def attachments_api(api):
    probe = api.create("probe")
    missing = api.route_missing("GET", f"/items/{probe['id']}/attachments")
    api.request("DELETE", f"/items/{probe['id']}")
    if missing:
        pytest.skip("the API has no attachments routes yet: GET /items/{id}/attachments answers 'no such route'")
    return api


def open_item(page, stack, name):
    open_app(page, stack)
    row(page, name).get_by_test_id("item-open").click()
    expect(page.get_by_test_id("attachments")).to_be_visible()


def test_upload_shows_real_progress_then_ready_and_downloads(attachments_api, page, local_stack, shot):
    item = attachments_api.create("Receipt with scan")
    content = PNG + bytes(1_200_000)
    instrument_uploads(page)
    open_item(page, local_stack, "Receipt with scan")
    throttle_uploads(page, 400_000)

    with (
        page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/attachments")) as created,
        page.expect_request(lambda r: r.method == "POST" and "/items/" not in r.url) as stored,
    ):
        page.get_by_test_id("attachment-file").set_input_files(
            {"name": "scan.png", "mimeType": "image/png", "buffer": content}
        )
    upload = created.value.json()["upload"]
    attachment = page.get_by_test_id("attachment-row").filter(has_text="scan.png")
    expect(attachment.get_by_test_id("attachment-status")).to_have_text("pending")
    expect(attachment.get_by_test_id("upload-progress")).to_be_visible()
    shot("uploading")

    # Straight to storage, every presigned field first and the file last, under the name "file".
    assert stored.value.url == upload["url"]
    assert sent_forms(page) == [[*upload["fields"], "file"]]

    # Refreshed live, no reload: pending → ready, then a download link.
    expect(attachment.get_by_test_id("attachment-status")).to_have_text("ready", timeout=STATUS_TIMEOUT)
    link = attachment.get_by_test_id("attachment-download")
    expect(link).to_be_visible()
    expect(link).to_have_attribute("download", "scan.png")
    shot("ready")

    values = progress_values(page)
    assert values and values[-1] == 100
    assert any(0 < value < 100 for value in values), f"no intermediate progress reported: {values}"

    downloaded = requests.get(link.get_attribute("href"), timeout=10)
    assert downloaded.status_code == 200
    assert downloaded.content == content
    (stored_record,) = attachments_api.request("GET", f"/items/{item['id']}/attachments").json()["attachments"]
    assert (stored_record["status"], stored_record["filename"], stored_record["size"]) == ("ready", "scan.png", len(content))


def test_rejected_upload_shows_the_reason(attachments_api, page, local_stack, shot):
    attachments_api.create("Mismatch")

    def declare_one_more_byte(route):
        if route.request.method != "POST":
            route.continue_()
            return
        body = json.loads(route.request.post_data)
        body["size"] += 1
        route.continue_(post_data=json.dumps(body))

    # The stored object is one byte shorter than declared: the storage check must reject it.
    page.route(lambda url: url.endswith("/attachments"), declare_one_more_byte)
    open_item(page, local_stack, "Mismatch")
    page.get_by_test_id("attachment-file").set_input_files(
        {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello attachments\n"}
    )
    attachment = page.get_by_test_id("attachment-row").filter(has_text="notes.txt")
    expect(attachment.get_by_test_id("attachment-status")).to_have_text("rejected", timeout=STATUS_TIMEOUT)
    expect(attachment.get_by_test_id("attachment-detail")).to_contain_text("Rejected:")
    expect(attachment.get_by_test_id("attachment-download")).to_have_count(0)
    shot("rejected")


def test_delete_an_attachment_after_confirmation(attachments_api, page, local_stack):
    item = attachments_api.create("Tidy up")
    open_item(page, local_stack, "Tidy up")
    page.get_by_test_id("attachment-file").set_input_files(
        {"name": "data.json", "mimeType": "application/json", "buffer": b'{"a": 1}'}
    )
    attachment = page.get_by_test_id("attachment-row").filter(has_text="data.json")
    expect(attachment.get_by_test_id("attachment-status")).to_have_text("ready", timeout=STATUS_TIMEOUT)
    attachment.get_by_test_id("attachment-delete").click()
    expect(page.get_by_test_id("confirm-dialog")).to_contain_text("“data.json”")
    page.get_by_test_id("confirm-delete").click()
    expect(attachment).to_have_count(0)
    expect(page.get_by_test_id("attachment-file")).to_be_focused()
    listed = attachments_api.request("GET", f"/items/{item['id']}/attachments").json()["attachments"]
    assert listed == []


def test_an_unaccepted_file_type_is_refused_before_any_request(attachments_api, page, local_stack):
    item = attachments_api.create("Careful")
    open_item(page, local_stack, "Careful")
    sent = []
    page.on("request", lambda r: sent.append(r.url) if r.method == "POST" else None)
    page.get_by_test_id("attachment-file").set_input_files(
        {"name": "tool.exe", "mimeType": "application/x-msdownload", "buffer": b"MZ"}
    )
    expect(page.get_by_test_id("attachment-error")).to_contain_text("not an accepted type")
    expect(page.get_by_test_id("attachment-file")).to_have_attribute("aria-invalid", "true")
    assert sent == []
    assert attachments_api.request("GET", f"/items/{item['id']}/attachments").json()["attachments"] == []


def upload_via_api(api, item_id, filename, content_type, content):
    """An attachment stored through the API and storage, as another client would, until ready."""
    created = api.request(
        "POST", f"/items/{item_id}/attachments", json={"filename": filename, "content_type": content_type, "size": len(content)}
    ).json()
    form = created["upload"]
    stored = requests.post(form["url"], data=form["fields"], files={"file": (filename, content, content_type)}, timeout=10)
    assert stored.status_code in (200, 201, 204), stored.text
    for _ in range(100):
        record = api.request("GET", f"/items/{item_id}/attachments/{created['id']}").json()
        if record["status"] != "pending":
            return record
        time.sleep(0.2)
    raise AssertionError("the attachment never left pending")


def test_images_show_a_thumbnail_and_other_files_their_type(attachments_api, page, local_stack, shot):
    item = attachments_api.create("With pictures")
    upload_via_api(attachments_api, item["id"], "scan.png", "image/png", PNG)
    upload_via_api(attachments_api, item["id"], "notes.txt", "text/plain", b"hello")
    open_item(page, local_stack, "With pictures")
    image_row = page.get_by_test_id("attachment-row").filter(has_text="scan.png")
    thumbnail = image_row.get_by_test_id("attachment-thumbnail")
    expect(thumbnail).to_be_visible()
    page.wait_for_function("(img) => img.complete && img.naturalWidth === 1", arg=thumbnail.element_handle())
    text_row = page.get_by_test_id("attachment-row").filter(has_text="notes.txt")
    expect(text_row.get_by_test_id("attachment-thumbnail")).to_have_count(0)
    expect(text_row).to_contain_text("TXT")
    shot("thumbnails")


def test_an_upload_in_progress_can_be_cancelled_and_leaves_nothing(attachments_api, page, local_stack, shot):
    item = attachments_api.create("Cancel me")
    open_item(page, local_stack, "Cancel me")
    throttle_uploads(page, 100_000)
    page.get_by_test_id("attachment-file").set_input_files(
        {"name": "big.png", "mimeType": "image/png", "buffer": PNG + bytes(2_000_000)}
    )
    attachment = page.get_by_test_id("attachment-row").filter(has_text="big.png")
    expect(attachment.get_by_test_id("upload-progress")).to_be_visible()
    shot("uploading")
    with page.expect_response(lambda r: r.request.method == "DELETE" and "/attachments/" in r.url) as deleted:
        attachment.get_by_role("button", name="Cancel the upload of big.png").click()
    assert deleted.value.status == 204
    expect(attachment).to_have_count(0)
    expect(page.get_by_test_id("toast").filter(has_text="Upload of “big.png” cancelled.")).to_be_visible()
    assert attachments_api.request("GET", f"/items/{item['id']}/attachments").json()["attachments"] == []


def box_of(locator):
    """The element's box, once it is laid out (a row is re-rendered while its status changes)."""
    for _ in range(20):
        box = locator.bounding_box(timeout=2_000)
        if box:
            return box
        time.sleep(0.05)
    raise AssertionError(f"{locator} has no box")


def test_a_row_keeps_its_height_when_its_upload_ends(attachments_api, page, local_stack):
    attachments_api.create("Steady")
    open_item(page, local_stack, "Steady")
    throttle_uploads(page, 200_000)
    page.get_by_test_id("attachment-file").set_input_files(
        {"name": "steady.png", "mimeType": "image/png", "buffer": PNG + bytes(400_000)}
    )
    attachment = page.get_by_test_id("attachment-row").filter(has_text="steady.png")
    expect(attachment.get_by_test_id("upload-progress")).to_be_visible()
    uploading = box_of(attachment)
    expect(attachment.get_by_test_id("attachment-status")).to_have_text("ready", timeout=STATUS_TIMEOUT)
    ready = box_of(attachment)
    assert uploading and ready and uploading["height"] == ready["height"]


def test_download_links_are_renewed_before_they_expire(attachments_api, page, local_stack):
    item = attachments_api.create("Long visit")
    record = upload_via_api(attachments_api, item["id"], "scan.png", "image/png", PNG)
    lifetime = int(re.search(r"X-Amz-Expires=(\d+)", record["download_url"]).group(1))
    page.clock.install()
    open_item(page, local_stack, "Long visit")
    link = page.get_by_test_id("attachment-download")
    expect(link).to_be_visible()
    first = link.get_attribute("href")
    time.sleep(1.1)  # the next link is signed at another second, so it differs
    fetches = []
    page.on("request", lambda r: fetches.append(r.url) if r.url.endswith("/attachments") and r.method == "GET" else None)
    # Nothing is fetched again early (two thirds of the lifetime on the page's clock) ...
    page.clock.run_for(lifetime * 2 // 3 * 1000)
    page.wait_for_timeout(300)
    assert fetches == []
    # ... but before the link expires, the list is fetched again with fresh links.
    with page.expect_response(lambda r: r.url.endswith("/attachments") and r.request.method == "GET", timeout=5_000):
        page.clock.run_for((lifetime * 5 // 6 - lifetime * 2 // 3) * 1000)
    expect(link).not_to_have_attribute("href", first)
    assert requests.get(link.get_attribute("href"), timeout=10).status_code == 200
