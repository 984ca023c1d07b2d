"""The README's curl tour, run as written against the real local stack."""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import sys

import pytest

from tests.localstack import ROOT


def tour_blocks() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    tour = readme.split("## A tour with curl", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", tour, flags=re.S)


def fresh_key(local_stack) -> str:
    """A key of a tenant of its own, so ids the tour uses (receipt-1, trip) are free."""
    env = {k: v for k, v in local_stack.env.items() if not k.startswith("AWS_")}
    issued = subprocess.run([sys.executable, "-m", "tools.apikeys", "--local", "create", f"tour-{secrets.token_hex(4)}"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True)
    return str(json.loads(issued.stdout)["key"])


def run(block: str, local_stack, cwd) -> str:
    key = fresh_key(local_stack)
    script = "set -eu -o pipefail\n" + block
    script = re.sub(r"^API=.*$", f"API={local_stack.api_url}", script, flags=re.M)
    script = re.sub(r'^AUTH=.*$', f'AUTH="Authorization: Bearer {key}"', script, flags=re.M)
    if "API=" not in block:
        script = f'API={local_stack.api_url}\nAUTH="Authorization: Bearer {key}"\n' + script
    done = subprocess.run(["bash", "-c", script], check=False, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_items_tour_answers_as_the_readme_says(local_stack, tmp_path):
    blocks = tour_blocks()
    assert "make run" in blocks[0]
    out = run(blocks[1], local_stack, tmp_path)
    assert '{"status":"ok"' in out
    assert "HTTP/1.1 201" in out and 'ETag: "1"' in out and "Location: /items/receipt-1" in out
    assert '"n":12345678901234567890' in out and '"amount":12.5' in out
    assert "HTTP/1.1 304" in out
    assert '"description":"team lunch"' in out and '"version":2' in out
    assert "/problems/precondition-failed" in out
    assert '"detail":"must not be blank"' in out and '"detail":"is read-only"' in out
    assert out.count("Idempotent-Replayed: true") == 1
    assert '"next_cursor":' in out
    assert '"expires_at":"2029-12-31T22:00:00.000Z"' in out
    assert "HTTP/1.1 204" in out
    assert '"openapi":"3.1.0"' in out


@pytest.mark.skipif(shutil.which("jq") is None, reason="the attachment and import tour uses jq")
def test_the_attachment_and_import_tour_answers_as_the_readme_says(local_stack, tmp_path):
    out = run(tour_blocks()[2], local_stack, tmp_path)
    assert '"status": "ready"' in out
    assert '"status": "completed"' in out
    assert '"rows_imported": 1' in out and '"line": 3' in out and "/name must not be blank" in out
