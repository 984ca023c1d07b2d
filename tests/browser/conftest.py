"""Browser tests: Debian's Chromium driven by Playwright against the real local stack.

Every test gets a fresh browser context on the stack's front end, with the tenant "alpha" (the
key the page is configured with) emptied first. Any console error or uncaught exception in the
page fails the test, except the ones a test declares it provokes (``console.allow``): Chromium
logs every HTTP error response ("Failed to load resource: ... 422") as a console error, so a test
that triggers a 422 on purpose allows exactly that. A screenshot of the final state of every test
is saved under ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.localstack import ROOT, RunningStack

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
# Answers of API Gateway (without the stage's gateway responses) for a route that does not exist: the feature is not
# deployed yet, as opposed to an application answer.
_NO_SUCH_ROUTE = ("Missing Authentication Token", "Authorization header requires")

expect.set_options(timeout=10_000)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "viewport(width, height): the page's viewport, as on a phone (touch)")


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"the browser tests need Chromium at {CHROMIUM}: install the Debian package 'chromium'")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class ConsoleWatch:
    """Console errors and uncaught exceptions of a page, and the ones the test expects."""

    errors: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [error for error in self.errors if not any(p.search(error) for p in self.allowed)]


@pytest.fixture
def console() -> ConsoleWatch:
    return ConsoleWatch()


class Api:
    """The API as a test sets it up and checks it, beside the page (one tenant's key)."""

    def __init__(self, stack: RunningStack, tenant: str) -> None:
        self.url = stack.api_url
        self.http = stack.session(tenant)

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.http.request(method, f"{self.url}{path}", timeout=10, **kwargs)

    def create(self, name: str, **fields: Any) -> dict[str, Any]:
        response = self.request("POST", "/items", json={"name": name, **fields})
        assert response.status_code == 201, response.text
        return dict(response.json())

    def get(self, item_id: str) -> requests.Response:
        return self.request("GET", f"/items/{item_id}")

    def all_items(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            page = self.request("GET", "/items", params=params).json()
            items += page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                return items

    def delete_all(self) -> None:
        for item in self.all_items():
            self.request("DELETE", f"/items/{item['id']}")

    def route_missing(self, method: str, path: str, **kwargs: Any) -> bool:
        """Whether the deployed API has no such route at all (a feature not merged yet)."""
        response = self.request(method, path, **kwargs)
        if response.status_code == 404 and "X-Request-Id" not in response.headers:
            return True
        return response.status_code in (403, 404) and any(text in response.text for text in _NO_SUCH_ROUTE)


@pytest.fixture
def api(local_stack: RunningStack) -> Api:
    """Tenant alpha, the one the page is configured with; emptied before each test."""
    client = Api(local_stack, "alpha")
    client.delete_all()
    return client


@pytest.fixture
def beta_api(local_stack: RunningStack) -> Api:
    client = Api(local_stack, "beta")
    client.delete_all()
    return client


class Shots:
    def __init__(self, page: Page, test_name: str) -> None:
        self.page = page
        self.prefix = re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)

    def __call__(self, label: str, *, full_page: bool = True) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{self.prefix}-{label}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path


@pytest.fixture
def page(browser: Browser, console: ConsoleWatch, api: Api, request: pytest.FixtureRequest) -> Iterator[Page]:
    marker = request.node.get_closest_marker("viewport")
    if marker:
        width, height = marker.args
        context = browser.new_context(viewport={"width": width, "height": height}, is_mobile=True, has_touch=True)
    else:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(10_000)

    def on_console(message: Any) -> None:
        if message.type == "error":
            console.errors.append(f"{message.text} [{message.location.get('url', '')}]")

    opened.on("console", on_console)
    opened.on("pageerror", lambda error: console.errors.append(f"uncaught exception: {error}"))
    yield opened
    if not opened.is_closed():
        Shots(opened, request.node.name)("final")
    context.close()
    unexpected = console.unexpected()
    assert not unexpected, f"console errors in the page: {unexpected}"


@pytest.fixture
def shot(page: Page, request: pytest.FixtureRequest) -> Shots:
    return Shots(page, request.node.name)


def open_app(page: Page, stack: RunningStack, fragment: str = "") -> None:
    """Load the page and wait until the first list of items has arrived."""
    with page.expect_response(lambda r: "/items?" in r.url and r.request.method == "GET"):
        page.goto(stack.ui_url + fragment)
    expect(page.get_by_test_id("item-list")).to_have_attribute("aria-busy", "false")


def new_item(page: Page) -> None:
    """Open the editor on an empty item."""
    page.get_by_test_id("new-item").click()
    expect(page.get_by_test_id("editor")).to_be_visible()
    expect(page.get_by_test_id("item-name")).to_be_focused()


def row(page: Page, name: str) -> Any:
    return page.get_by_test_id("item-row").filter(has=page.get_by_role("link", name=f"Edit {name}", exact=True))


# Records, in the page, every value a progress bar takes (whatever re-renders it) and the part
# names of every multipart form sent with XMLHttpRequest (the browser does not expose a body that
# holds a file to the test).
_INSTRUMENT = """
window.__progress = [];
window.__forms = [];
new MutationObserver((mutations) => {
  for (const mutation of mutations) {
    const nodes = mutation.type === 'attributes' ? [mutation.target] : [...mutation.addedNodes];
    for (const node of nodes) {
      if (!(node instanceof Element)) continue;
      const bars = node.matches('[data-testid="upload-progress"]') ? [node] : node.querySelectorAll('[data-testid="upload-progress"]');
      for (const bar of bars) window.__progress.push(Number(bar.value));
    }
  }
}).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ['value'] });
const send = XMLHttpRequest.prototype.send;
XMLHttpRequest.prototype.send = function (body) {
  if (body instanceof FormData) window.__forms.push([...body.keys()]);
  return send.call(this, body);
};
"""


def instrument_uploads(page: Page) -> None:
    """Call before loading the page; then read ``progress_values`` and ``sent_forms``."""
    page.add_init_script(_INSTRUMENT)


def progress_values(page: Page) -> list[float]:
    return list(page.evaluate("window.__progress"))


def sent_forms(page: Page) -> list[list[str]]:
    """The part names of each multipart form the page sent, in order."""
    return [list(form) for form in page.evaluate("window.__forms")]


def throttle_uploads(page: Page, bytes_per_second: int) -> None:
    """Slow the page's uploads down so that progress is reported in several steps."""
    session = page.context.new_cdp_session(page)
    session.send("Network.enable")
    session.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": bytes_per_second},
    )
