"""People in the browser: sign up with the e-mailed code, sign in, reset a password, sign out, and a
session that ends in the middle of an edit without losing it. Against the local stack's user pool."""

from __future__ import annotations

import json
import secrets

import requests
from playwright.sync_api import Page, expect

from tests.browser.conftest import open_app, row
from tests.localstack import RunningStack
from tests.people import code_for, pool_of

PASSWORD = "Correct-horse-42"


def sign_in(page: Page, email: str, password: str) -> None:
    page.get_by_test_id("sign-in").click()
    dialog = page.get_by_test_id("account-dialog")
    expect(dialog).to_be_visible()
    page.get_by_test_id("account-email").fill(email)
    page.get_by_test_id("account-password").fill(password)
    page.get_by_test_id("account-submit").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_test_id("account-name")).to_have_text(email)


def test_sign_up_confirm_manage_items_and_sign_out(page: Page, local_stack: RunningStack, api, shot) -> None:
    api.create("Alpha's item")
    open_app(page, local_stack)
    email = f"new-{secrets.token_hex(3)}@example.com"
    page.get_by_test_id("sign-in").click()
    page.get_by_role("button", name="Create an account").click()
    expect(page.get_by_role("heading", name="Create an account")).to_be_visible()
    page.get_by_test_id("account-email").fill(email)
    page.get_by_test_id("account-new-password").fill("short")
    page.get_by_test_id("account-submit").click()
    expect(page.get_by_test_id("account-error")).to_contain_text("At least 12 characters")
    page.get_by_test_id("account-new-password").fill(PASSWORD)
    page.get_by_test_id("account-submit").click()
    expect(page.get_by_test_id("account-message")).to_contain_text(f"We sent a code to {email}")
    shot("confirm")
    page.get_by_test_id("account-code").fill(code_for(local_stack, email, "sign-up"))
    page.get_by_test_id("account-submit").click()
    expect(page.get_by_test_id("account-dialog")).to_be_hidden()
    expect(page.get_by_test_id("account-name")).to_have_text(email)

    # A new person has a tenant of their own: nothing of alpha's.
    expect(row(page, "Alpha's item")).to_have_count(0)
    page.get_by_test_id("new-item").click()
    page.get_by_test_id("item-name").fill("My first item")
    page.get_by_test_id("item-save").click()
    expect(row(page, "My first item")).to_be_visible()
    assert "My first item" not in [item["name"] for item in api.all_items()]

    page.reload()  # the session lives in this tab's sessionStorage
    expect(page.get_by_test_id("account-name")).to_have_text(email)
    expect(row(page, "My first item")).to_be_visible()

    page.get_by_test_id("sign-out").click()
    expect(page.get_by_test_id("sign-in")).to_be_visible()
    expect(page.get_by_test_id("account-name")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('items-ui.session')") is None


def test_the_demo_person_sees_their_tenants_items(page: Page, local_stack: RunningStack, api) -> None:
    api.create("Shared with the key")
    open_app(page, local_stack)
    demo = pool_of(local_stack)["demo"]
    sign_in(page, demo["email"], demo["password"])
    expect(row(page, "Shared with the key")).to_be_visible()
    expect(page.locator("#connection-label")).to_contain_text("signed in")
    assert page.evaluate("localStorage.length") == 0  # no token where other tabs or later visits could read it


def test_forgot_password_with_the_emailed_code(page: Page, local_stack: RunningStack, api, console) -> None:
    from tools import users

    pool = pool_of(local_stack)
    email = f"forgetful-{secrets.token_hex(3)}@example.com"
    users.invite(pool["cognito"], pool["pool_id"], email, "alpha", PASSWORD)
    open_app(page, local_stack)
    page.get_by_test_id("sign-in").click()
    page.get_by_test_id("account-email").fill(email)
    page.get_by_test_id("account-password").fill("Not-the-password-1")
    page.get_by_test_id("account-submit").click()
    expect(page.get_by_test_id("account-error")).to_have_text("The e-mail address or password is not right.")
    console.allow(r"Failed to load resource.*400")

    page.get_by_role("button", name="Forgot password?").click()
    page.get_by_test_id("account-submit").click()  # "Send a code" for the address typed above
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    page.get_by_test_id("account-code").fill(code_for(local_stack, email, "password reset"))
    page.get_by_test_id("account-new-password").fill("Brand-new-pass-9")
    page.get_by_test_id("account-submit").click()
    expect(page.get_by_test_id("account-name")).to_have_text(email)


def test_an_ended_session_asks_to_sign_in_again_and_keeps_the_unsaved_edit(
    page: Page, local_stack: RunningStack, api, console
) -> None:
    pool = pool_of(local_stack)
    open_app(page, local_stack)
    demo = pool["demo"]
    sign_in(page, demo["email"], demo["password"])
    page.get_by_test_id("new-item").click()
    page.get_by_test_id("item-name").fill("Typed before the session ended")

    # The session ends at the pool (signed out everywhere: the refresh token is revoked too).
    session = json.loads(page.evaluate("sessionStorage.getItem('items-ui.session')"))
    pool["cognito"].global_sign_out(AccessToken=session["accessToken"])
    # API Gateway would keep allowing the token it has already seen until its cache (60 s) runs
    # out; the API's own answer to a token it refuses is sent to the page for its next request.
    refused = requests.get(f"{local_stack.api_url}/items", headers={"Authorization": "Bearer " + session["accessToken"][:-4]},
                           timeout=10)
    assert refused.status_code == 401
    answered = []

    def refuse_once(route) -> None:
        if answered:
            route.continue_()
            return
        answered.append(route.request.url)
        route.fulfill(status=401, headers=dict(refused.headers), body=refused.content)

    page.route(f"{local_stack.api_url}/items", refuse_once)
    console.allow(r"Failed to load resource.*401")
    console.allow(r"Failed to load resource.*400")
    page.get_by_test_id("item-save").click()
    expect(page.get_by_test_id("account-dialog")).to_be_visible()
    expect(page.get_by_test_id("account-message")).to_contain_text("nothing you typed is lost")
    page.get_by_test_id("account-email").fill(demo["email"])
    page.get_by_test_id("account-password").fill(demo["password"])
    page.get_by_test_id("account-submit").click()
    expect(page.get_by_test_id("account-dialog")).to_be_hidden()
    expect(page.get_by_test_id("item-name")).to_have_value("Typed before the session ended")
    page.get_by_test_id("item-save").click()
    expect(row(page, "Typed before the session ended")).to_be_visible()
    assert answered, "the page never sent the refused request"


def test_a_token_about_to_expire_is_refreshed_before_use(page: Page, local_stack: RunningStack, api) -> None:
    api.create("Seen after a refresh")
    open_app(page, local_stack)
    demo = pool_of(local_stack)["demo"]
    sign_in(page, demo["email"], demo["password"])
    before = json.loads(page.evaluate("sessionStorage.getItem('items-ui.session')"))
    # As if the access token were a few seconds from expiring when the page loads again.
    page.evaluate("""() => {
      const session = JSON.parse(sessionStorage.getItem('items-ui.session'));
      session.expiresAt = Date.now() + 5000;
      sessionStorage.setItem('items-ui.session', JSON.stringify(session));
    }""")
    with page.expect_request(lambda r: r.headers.get("x-amz-target", "").endswith(".GetTokensFromRefreshToken")):
        page.reload()
    expect(row(page, "Seen after a refresh")).to_be_visible()
    after = json.loads(page.evaluate("sessionStorage.getItem('items-ui.session')"))
    assert after["accessToken"] != before["accessToken"]
    assert after["expiresAt"] > before["expiresAt"] - 5000


def test_the_codes_the_pool_would_email_are_on_the_operations_page(page: Page, local_stack: RunningStack, api) -> None:
    pool = pool_of(local_stack)
    email = f"coded-{secrets.token_hex(3)}@example.com"
    pool["cognito"].sign_up(ClientId=pool["client_id"], Username=email, Password=PASSWORD,
                            UserAttributes=[{"Name": "email", "Value": email}])
    code = code_for(local_stack, email, "sign-up")
    page.goto(local_stack.ui_url + "#/operations")
    expect(page.get_by_test_id("ops-codes")).to_contain_text(f"sign-up for {email}: {code}")
