"""A client generated from the served document drives every route of the local stack.

``tools.client.generate`` runs ``openapi-python-client`` on ``/openapi.json`` afresh (nothing edited
by hand) and every call below goes through the generated functions, with
``raise_on_unexpected_status``: a status the document does not declare, or a body its schema cannot
parse (``KeyError: 'type'`` on a gateway refusal, before issue 13), fails the test. Every error is
parsed as the generated ``ProblemDocument``, whoever answered.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import requests

from tests.integration.test_events import post_form, wait_for
from tests.localstack import RunningStack, start_stack
from tools.client import PACKAGE, generate


@pytest.fixture(scope="module")
def gen(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The freshly generated package, imported; its modules reached as gen.api / gen.models."""
    out = Path(tmp_path_factory.mktemp("client"))
    started = time.monotonic()
    generate(out)
    print(f"\nclient generated in {time.monotonic() - started:.1f} s")
    sys.path.insert(0, str(out))
    try:
        package = importlib.import_module(PACKAGE)
        yield Generated(package)
    finally:
        sys.path.remove(str(out))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


class Generated:
    def __init__(self, package: ModuleType) -> None:
        self.package = package

    def op(self, tag: str, name: str) -> Any:
        return importlib.import_module(f"{PACKAGE}.api.{tag}.{name}")

    def model(self, module: str, name: str) -> Any:
        return getattr(importlib.import_module(f"{PACKAGE}.models.{module}"), name)

    def client(self, stack: RunningStack, key: str | None, **kwargs: Any) -> Any:
        if key is None:
            return self.package.Client(base_url=stack.api_url, raise_on_unexpected_status=True, **kwargs)
        return self.package.AuthenticatedClient(base_url=stack.api_url, token=key, raise_on_unexpected_status=True,
                                                **kwargs)


def problem(gen: Generated, response: Any, status: int, slug: str) -> Any:
    assert response.status_code == status, (response.status_code, response.content)
    parsed = response.parsed
    assert isinstance(parsed, gen.model("problem_document", "ProblemDocument")), parsed
    assert parsed.status == status and parsed.type_.value == f"/problems/{slug}" and parsed.request_id
    return parsed


def test_every_route_through_the_generated_client(gen, local_stack):
    items, attachments, imports = "items", "attachments", "imports"
    alpha = gen.client(local_stack, local_stack.keys["alpha"])
    item_create = gen.model("item_create", "ItemCreate")
    item_create_data = gen.model("item_create_data", "ItemCreateData")

    assert gen.op("service", "health").sync(client=gen.client(local_stack, None)).status == "ok"
    assert gen.op("service", "openapi").sync_detailed(client=gen.client(local_stack, None)).status_code == 200

    # Create with an idempotency key, then replay it: same item, marked as replayed.
    body = item_create(name="Receipt", tags=["travel"], data=item_create_data.from_dict({"amount": 12.5}))
    first = gen.op(items, "create_item").sync_detailed(client=alpha, body=body, idempotency_key="client-create-1")
    assert first.status_code == 201
    item = first.parsed
    assert item.name == "Receipt" and item.tags == ["travel"] and item.data.to_dict() == {"amount": 12.5}
    replay = gen.op(items, "create_item").sync_detailed(client=alpha, body=body, idempotency_key="client-create-1")
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.parsed.id == item.id
    etag = first.headers["ETag"]

    # Get, then If-None-Match: 304 with no body.
    got = gen.op(items, "get_item").sync_detailed(client=alpha, id=item.id)
    assert got.status_code == 200 and got.parsed.version == 1 and got.headers["ETag"] == etag
    unchanged = gen.op(items, "get_item").sync_detailed(client=alpha, id=item.id, if_none_match=etag)
    assert unchanged.status_code == 304 and unchanged.parsed is None

    # Merge-patch with If-Match, then again with the now stale one.
    item_patch = gen.model("item_patch", "ItemPatch")
    patch_data = gen.model("item_patch_data_type_0", "ItemPatchDataType0")
    patched = gen.op(items, "patch_item").sync_detailed(
        client=alpha, id=item.id, if_match=etag, body=item_patch(description=None, data=patch_data.from_dict({"n": 2})))
    assert patched.status_code == 200, patched.content
    assert patched.parsed.version == 2 and patched.parsed.data.to_dict() == {"amount": 12.5, "n": 2}
    stale = gen.op(items, "patch_item").sync_detailed(client=alpha, id=item.id, if_match=etag,
                                                      body=item_patch(name="late"))
    problem(gen, stale, 412, "precondition-failed")
    assert stale.headers["ETag"] == '"2"'

    # Replace, list every page by next_cursor, delete.
    replace = gen.model("item_replace", "ItemReplace")
    replaced = gen.op(items, "replace_item").sync_detailed(client=alpha, id=item.id, body=replace(name="Replaced"))
    assert replaced.status_code == 200 and replaced.parsed.tags == [] and replaced.parsed.version == 3
    created = {item.id} | {gen.op(items, "create_item").sync(client=alpha, body=item_create(name=f"page {n}")).id
                           for n in range(4)}
    seen: list[str] = []
    page = gen.op(items, "list_items").sync(client=alpha, limit=2)
    pages = 1
    while True:
        seen += [listed.id for listed in page.items]
        if page.next_cursor is None:
            break
        page = gen.op(items, "list_items").sync(client=alpha, limit=2, cursor=page.next_cursor)
        pages += 1
    assert created <= set(seen) and len(seen) == len(set(seen)) and pages >= 3
    # Finding: the documented query parameters, as the generated client sends them.
    named = gen.op(items, "list_items").sync(client=alpha, q="PAGE ", limit=100)
    assert not hasattr(named, "status"), named  # the client sends no sort of its own
    assert sorted(listed.name for listed in named.items) == [f"page {n}" for n in range(4)]
    assert named.next_cursor is None
    refused = gen.op(items, "list_items").sync_detailed(client=alpha, q="page", tag="x")
    assert refused.status_code == 400

    # Attachments: declare, upload through the returned form, see it ready, list, delete.
    attachment_create = gen.model("attachment_create", "AttachmentCreate")
    content_type = gen.model("attachment_create_content_type", "AttachmentCreateContentType")
    content = b"hello, attachments"
    declared = gen.op(attachments, "create_attachment").sync_detailed(
        client=alpha, id=item.id, idempotency_key="client-attach-1",
        body=attachment_create(filename="hello.txt", content_type=content_type("text/plain"), size=len(content)))
    assert declared.status_code == 201, declared.content
    attachment = declared.parsed
    post_form({"url": attachment.upload.url, "fields": attachment.upload.fields.to_dict()}, content, "hello.txt")
    ready = wait_for(lambda: (a := gen.op(attachments, "get_attachment").sync(
        client=alpha, id=item.id, attachment_id=attachment.id)).status.value == "ready" and a, what="attachment ready")
    assert requests.get(ready.download_url, timeout=10).content == content
    listed = gen.op(attachments, "list_attachments").sync(client=alpha, id=item.id)
    assert [a.id for a in listed.attachments] == [attachment.id]
    assert gen.op(attachments, "delete_attachment").sync_detailed(
        client=alpha, id=item.id, attachment_id=attachment.id).status_code == 204

    # Imports: declare, upload the rows through the returned form, see it complete.
    rows = b"".join(json.dumps({"name": f"imported {n}"}).encode() + b"\n" for n in range(3))
    import_create = gen.model("import_create", "ImportCreate")
    import_format = gen.model("import_create_format", "ImportCreateFormat")
    started = gen.op(imports, "create_import").sync_detailed(
        client=alpha, idempotency_key="client-import-1", body=import_create(format_=import_format("jsonl"),
                                                                            size=len(rows)))
    assert started.status_code == 201, started.content
    job = started.parsed
    post_form({"url": job.upload.url, "fields": job.upload.fields.to_dict()}, rows, "rows.jsonl")
    done = wait_for(lambda: (j := gen.op(imports, "get_import").sync(client=alpha, import_id=job.id)).status.value
                    == "completed" and j, timeout=60, what="import completed")
    assert (done.rows_total, done.rows_imported, done.rows_failed) == (3, 3, 0)
    assert job.id in [j.id for j in gen.op(imports, "list_imports").sync(client=alpha, limit=100).imports]

    assert gen.op(items, "delete_item").sync_detailed(client=alpha, id=item.id).status_code == 204

    # Every error, parsed as a problem: the gateway's and the application's.
    problem(gen, gen.op(items, "list_items").sync_detailed(client=gen.client(local_stack, None)), 401, "unauthorized")
    problem(gen, gen.op(items, "list_items").sync_detailed(client=gen.client(local_stack, "not-a-key-" + "x" * 30)),
            403, "forbidden")
    problem(gen, gen.op(items, "get_item").sync_detailed(client=alpha, id=item.id), 404, "not-found")
    taken = next(i for i in created if i != item.id)
    duplicate = gen.op(items, "create_item").sync_detailed(client=alpha, body=item_create(name="again", id=taken))
    problem(gen, duplicate, 409, "conflict")
    def text_plain(request: Any) -> None:  # the generated code always sends JSON: relabel it on the wire
        request.headers["Content-Type"] = "text/plain"

    as_text = gen.client(local_stack, local_stack.keys["alpha"], httpx_args={"event_hooks": {"request": [text_plain]}})
    problem(gen, gen.op(items, "create_item").sync_detailed(client=as_text, body=item_create(name="x")), 415,
            "unsupported-media-type")
    invalid = problem(gen, gen.op(items, "create_item").sync_detailed(client=alpha, body=item_create(name="  ")), 422,
                      "validation-error")
    assert [(e.pointer, e.detail) for e in invalid.errors] == [("/name", "must not be blank")]
    problem(gen, gen.op(items, "list_items").sync_detailed(client=alpha, limit=0), 400, "bad-request")


@pytest.fixture(scope="module")
def limited_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    tmp = Path(tmp_path_factory.mktemp("client-limited"))
    stack = start_stack(tmp, {"RATE_LIMIT_RPS": "1", "RATE_LIMIT_BURST": "2", "LOCAL_STATE_FILE": str(tmp / "s.json")})
    yield stack
    stack.stop()


def test_rate_limited_answers_parse_as_problems(gen, limited_stack):
    alpha = gen.client(limited_stack, limited_stack.keys["alpha"])
    answers = [gen.op("items", "list_items").sync_detailed(client=alpha) for _ in range(6)]
    refused = next(a for a in answers if a.status_code == 429)
    problem(gen, refused, 429, "rate-limited")
    assert int(refused.headers["Retry-After"]) >= 1
