"""The settings panel (any stage, any key, kept in localStorage) and the error banner."""

from __future__ import annotations

import json

from playwright.sync_api import expect

from tests.browser.conftest import open_app, row
from tests.localstack import free_port


def save_settings(page, url: str, key: str) -> None:
    page.get_by_test_id("open-settings").click()
    dialog = page.get_by_test_id("settings-dialog")
    expect(dialog).to_be_visible()
    expect(page.get_by_test_id("settings-url")).to_be_focused()
    page.get_by_test_id("settings-url").fill(url)
    page.get_by_test_id("settings-key").fill(key)
    page.get_by_test_id("settings-save").click()
    expect(dialog).to_be_hidden()


def test_settings_point_the_page_at_another_key_and_persist(page, local_stack, api, beta_api, shot):
    api.create("Alpha's item")
    beta_api.create("Beta's item")
    open_app(page, local_stack)
    expect(row(page, "Alpha's item")).to_be_visible()

    page.get_by_test_id("open-settings").click()
    expect(page.get_by_test_id("settings-url")).to_have_value(local_stack.api_url)
    expect(page.get_by_test_id("settings-key")).to_have_value(local_stack.keys["alpha"])
    expect(page.get_by_test_id("settings-key")).to_have_attribute("type", "password")
    page.get_by_label("Show key").check()
    expect(page.get_by_test_id("settings-key")).to_have_attribute("type", "text")
    shot("settings")
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("open-settings")).to_be_focused()

    save_settings(page, local_stack.api_url + "/", local_stack.keys["beta"])
    expect(row(page, "Beta's item")).to_be_visible()
    expect(row(page, "Alpha's item")).to_have_count(0)
    expect(page.locator("#connection-label")).to_contain_text("(from Settings)")
    stored = json.loads(page.evaluate("localStorage.getItem('items-ui.settings')"))
    assert stored == {"apiUrl": local_stack.api_url, "apiKey": local_stack.keys["beta"]}

    # Kept across reloads: localStorage overrides config.js.
    open_app(page, local_stack)
    expect(row(page, "Beta's item")).to_be_visible()

    page.get_by_test_id("open-settings").click()
    page.get_by_test_id("settings-reset").click()
    expect(row(page, "Alpha's item")).to_be_visible()
    assert page.evaluate("localStorage.getItem('items-ui.settings')") is None


def test_settings_refuse_a_url_that_is_not_one(page, local_stack, api):
    open_app(page, local_stack)
    page.get_by_test_id("open-settings").click()
    page.get_by_test_id("settings-url").fill("not a url")
    page.get_by_test_id("settings-save").click()
    expect(page.get_by_test_id("settings-dialog")).to_be_visible()
    expect(page.locator("#settings-url-error")).to_contain_text("full URL")
    expect(page.get_by_test_id("settings-url")).to_have_attribute("aria-invalid", "true")


def test_wrong_key_shows_an_auth_error_banner(page, local_stack, api, console, shot):
    console.allow(r"status of 40[13]")  # unknown key: 401 or 403, as API.md allows
    open_app(page, local_stack)
    save_settings(page, local_stack.api_url, "key-that-does-not-exist-0000")
    banner = page.get_by_test_id("error-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Not authorised")
    expect(banner).to_contain_text("API key")
    expect(banner).to_contain_text("Check the key in Settings")
    expect(banner.get_by_role("button", name="Open settings")).to_be_visible()
    shot("auth-error")
    banner.get_by_role("button", name="Open settings").click()
    expect(page.get_by_test_id("settings-dialog")).to_be_visible()


def test_unreachable_api_shows_a_network_error_banner(page, local_stack, api, console, shot):
    console.allow(r"ERR_CONNECTION_REFUSED")
    open_app(page, local_stack)
    closed = f"http://127.0.0.1:{free_port()}"
    save_settings(page, closed, local_stack.keys["alpha"])
    banner = page.get_by_test_id("error-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Network error")
    expect(banner).to_contain_text(f"Cannot reach the API at {closed}")
    shot("network-error")

    # Back to the working stage: Retry is offered, and "Use page defaults" recovers.
    expect(banner.get_by_role("button", name="Retry")).to_be_visible()
    page.get_by_test_id("open-settings").click()
    page.get_by_test_id("settings-reset").click()
    expect(banner).to_be_hidden()


def test_server_errors_show_the_detail_and_request_id(page, local_stack, api, console, shot):
    console.allow(r"status of 500")
    console.allow(r"status of 503")
    answers = iter([
        (500, {"type": "/problems/internal-error", "title": "Internal error", "status": 500,
               "detail": "an unexpected error occurred", "request_id": "req-500-abc"}, {}),
        (503, {"type": "/problems/service-unavailable", "title": "Service unavailable", "status": 503,
               "detail": "the database is busy", "request_id": "req-503-def"}, {"Retry-After": "7"}),
    ])

    def fail(route):
        status, body, headers = next(answers)
        route.fulfill(
            status=status,
            content_type="application/problem+json",
            body=json.dumps(body),
            headers={
                "Access-Control-Allow-Origin": local_stack.ui_url.rstrip("/"),
                "Access-Control-Expose-Headers": "X-Request-Id, Retry-After",
                **headers,
            },
        )

    page.route(lambda url: "/items?" in url, fail)
    page.goto(local_stack.ui_url)
    banner = page.get_by_test_id("error-banner")
    expect(banner).to_contain_text("Server error")
    expect(banner).to_contain_text("an unexpected error occurred")
    expect(banner).to_contain_text("Request id: req-500-abc")
    shot("server-error")

    banner.get_by_role("button", name="Retry").click()
    expect(banner).to_contain_text("The service is busy")
    expect(banner).to_contain_text("Try again in 7 s")

    page.unroute(lambda url: "/items?" in url)
    page.route(lambda url: "/items?" in url, lambda route: route.continue_())
    api.create("Back again")
    banner.get_by_role("button", name="Retry").click()
    expect(banner).to_be_hidden()
    expect(row(page, "Back again")).to_be_visible()
