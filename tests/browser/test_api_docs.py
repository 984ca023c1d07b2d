"""/docs/: the API's own /openapi.json rendered by the bundled Swagger UI, "Try it out" included."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.localstack import ROOT


def test_docs_render_the_served_document_and_run_a_request(page, local_stack, api, shot):
    created = api.create("Seen through the docs")
    outside: list[str] = []
    page.on("request", lambda request: outside.append(request.url)
            if not request.url.startswith(("http://127.0.0.1", "http://localhost", "data:")) else None)

    with page.expect_response(f"{local_stack.api_url}/openapi.json") as loaded:
        page.goto(local_stack.ui_url + "docs/")
    assert loaded.value.status == 200
    expect(page.locator(".info .title")).to_contain_text("Items service")
    operation = page.locator("#operations-items-getItem")
    expect(operation).to_be_visible()
    expect(page.locator(".opblock")).to_have_count(15)

    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.locator('input[placeholder="id"]').fill(created["id"])
    with page.expect_request(f"{local_stack.api_url}/items/{created['id']}") as sent:
        operation.get_by_role("button", name="Execute").click()
    assert sent.value.headers["authorization"] == f"Bearer {local_stack.keys['alpha']}"
    responses = operation.locator(".live-responses-table")
    expect(responses.locator("tbody .response-col_status").first).to_have_text("200")
    expect(responses.locator("tbody .response-col_description").first).to_contain_text("Seen through the docs")
    shot("docs")
    assert outside == [], f"the docs fetched from outside the stack: {outside}"


def test_the_bundled_swagger_ui_is_the_pinned_package():
    import json

    lock = json.loads((ROOT / "package-lock.json").read_text())
    pinned = lock["packages"]["node_modules/swagger-ui-dist"]["version"]
    bundled = (ROOT / "frontend" / "docs" / "swagger-ui" / "swagger-ui-bundle.js").read_bytes()
    installed = (ROOT / "node_modules" / "swagger-ui-dist" / "swagger-ui-bundle.js").read_bytes()
    assert pinned == "5.35.0" and bundled == installed
