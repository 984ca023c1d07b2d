"""No input makes a 5xx against the real local stack (``make run``'s servers, gateway included).

The same generated hostile requests as ``tests/unit/hardening/test_no_5xx.py`` (``tests/hostile.py``),
fewer of them (each crosses HTTP), to a tenant of their own: every answer is a success or a
well-formed 4xx problem document, whoever produced it (the application or the local gateway, for
paths no route matches too), and a refused request leaves the tenant's items, attachments and
imports as they were.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, seed, settings

from tests import hostile
from tests.localstack import ROOT

EXAMPLES = 2 * settings.default.max_examples  # the profile's (tests/conftest.py): 60, thorough 200
RESULTS: Counter[str] = Counter()


class Arena:
    def __init__(self, api_url: str, key: str) -> None:
        self.api_url = api_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {key}"
        self.seeded = False

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, f"{self.api_url}{path}", timeout=15, **kwargs)

    def ensure_seeded(self) -> None:
        if self.seeded:
            return
        self.seeded = True
        if self.call("GET", f"/items/{hostile.SEEDED_ITEM}").status_code == 404:
            assert self.call("POST", "/items", json={"id": hostile.SEEDED_ITEM, "name": "seed"}).status_code == 201
            attachment = {"filename": "a.txt", "content_type": "text/plain", "size": 5}
            assert self.call("POST", f"/items/{hostile.SEEDED_ITEM}/attachments", json=attachment).status_code == 201

    def _walk(self, path: str, key: str) -> list[Any]:
        found: list[Any] = []
        url = f"{path}?limit=100"
        while True:
            page = self.call("GET", url).json()
            found += page[key]
            if not page["next_cursor"]:
                return found
            url = f"{path}?limit=100&cursor={page['next_cursor']}"

    def _attachments(self, item_id: str) -> list[dict[str, Any]]:
        # Upload forms and download links are signed afresh on every read: not state.
        response = self.call("GET", f"/items/{item_id}/attachments")
        listed = response.json()["attachments"] if response.status_code == 200 else []
        return [{k: v for k, v in a.items() if k not in ("upload", "download_url")} for a in listed]

    def snapshot(self) -> dict[str, Any]:
        return {
            "items": self._walk("/items", "items"),
            # Generated attachment requests name the seeded item or ids that mostly do not exist.
            "attachments": self._attachments(hostile.SEEDED_ITEM),
            "imports": self._walk("/imports", "imports"),
        }


@pytest.fixture(scope="module")
def arena(local_stack):
    env = {k: v for k, v in local_stack.env.items() if not k.startswith("AWS_")}
    issued = subprocess.run([sys.executable, "-m", "tools.apikeys", "--local", "create", f"hostile-{secrets.token_hex(4)}"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True)
    started = time.monotonic()
    yield Arena(local_stack.api_url, json.loads(issued.stdout)["key"])
    print(f"\nno-5xx (local stack): {dict(sorted(RESULTS.items()))} in {time.monotonic() - started:.1f} s")


@settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@seed(20261128)
@given(request=hostile.requests(latin1_headers=True))
def test_no_request_gets_a_5xx_and_a_refused_one_changes_nothing(arena, request):
    arena.ensure_seeded()
    before = arena.snapshot() if request.writes else None
    response = arena.call(request.method, request.path, headers=request.headers, data=request.raw_body)
    RESULTS["requests"] += 1
    RESULTS[str(response.status_code)] += 1
    if request.method == "DELETE":
        arena.seeded = False  # check again before the next request
    assert not hostile.problems_in(response.status_code, dict(response.headers), response.content), (
        request, response.status_code, response.content[:500])
    if before is not None and response.status_code >= 400:
        assert arena.snapshot() == before, (request, response.status_code, response.content[:300])
