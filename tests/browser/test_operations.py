"""The Operations page plots the traffic just made, and keeps updating while the API is used."""

from __future__ import annotations

from playwright.sync_api import expect

TOTAL = "() => Number(document.querySelector('[data-testid=ops-requests]')?.dataset.total || 0)"


def bar_value(page, chart: str, label: str) -> float:
    script = "(rects, label) => rects.filter((r) => r.dataset.label === label).map((r) => Number(r.dataset.value))"
    values = page.eval_on_selector_all(f"[data-testid={chart}] rect", script, label)
    return max(values, default=0.0)


def test_the_operations_page_plots_the_traffic_just_made(page, local_stack, api, console, shot):
    created = api.create("Watched")
    for _ in range(3):
        assert api.get(created["id"]).status_code == 200
    for _ in range(2):
        assert api.get("no-such-item-here").status_code == 404
    console.allow(r"status of 404")

    page.goto(local_stack.ui_url + "#/operations")
    link = page.get_by_role("link", name="Operations")
    expect(link).to_be_visible()
    expect(link).to_have_attribute("aria-current", "page")
    expect(page.get_by_role("heading", name="Operations")).to_be_visible()

    page.wait_for_function(f"({TOTAL})() >= 6", timeout=15000)
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=ops-errors] rect')]"
        ".some((r) => r.dataset.label === 'not-found' && Number(r.dataset.value) >= 2)",
        timeout=15000,
    )
    route = "GET /items/{item_id}"
    assert bar_value(page, "ops-latency", route) > 0
    series = page.eval_on_selector_all(f"[data-testid=ops-latency] rect[data-label='{route}']",
                                       "(rects) => rects.map((r) => r.dataset.series)")
    assert series == ["p50", "p95", "p99"]
    expect(page.locator("[data-testid=ops-queues] path[data-series=work]")).to_have_count(1)
    expect(page.locator("[data-testid=ops-queues] path[data-series=dead-letter]")).to_have_count(1)
    expect(page.get_by_test_id("ops-imports")).to_be_visible()
    expect(page.get_by_test_id("ops-cleanup")).to_be_visible()
    shot("operations")

    # It updates while the API is used, without reloading the page.
    seen = page.evaluate(TOTAL)
    for _ in range(4):
        assert api.get(created["id"]).status_code == 200
    page.wait_for_function(f"({TOTAL})() >= {seen + 4}", timeout=15000)

    # Every plot has a name that says what it shows, for assistive technology.
    labels = page.eval_on_selector_all("svg.ops-chart",
                                       "(charts) => charts.map((c) => [c.getAttribute('role'), c.getAttribute('aria-label')])")
    assert len(labels) == 5
    for role, label in labels:
        assert role == "img" and label and len(label) > 20
    assert "requests" in labels[0][1]
    assert console.unexpected() == []


def test_the_operations_view_is_a_section_like_the_others(page, local_stack, api):
    page.goto(local_stack.ui_url)
    link = page.get_by_role("link", name="Operations")
    expect(link).to_be_visible()
    link.click()
    expect(page.get_by_role("heading", name="Operations")).to_be_focused()
    expect(page.locator("#items-view")).to_be_hidden()
    page.get_by_role("link", name="Items").click()
    expect(page.locator("#operations-view")).to_be_hidden()
