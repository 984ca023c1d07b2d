"""Stateful Schemathesis from the document's links, against the local stack, with every check.

Schemathesis's stateful phase follows the OpenAPI ``links`` (create -> get / replace / patch /
delete, a page -> the next page, an attachment or import -> its reads), generating every step from
the served document in both positive and negative mode, with a fixed seed, and runs every check it
has on every response: no 5xx, status codes, content types, bodies and required headers as
declared, data the document allows accepted and data it forbids refused, authentication not
ignored, deleted resources gone. tests/integration/schemathesis.toml holds the only
relaxations, each with its reason.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import requests
from hypothesis import settings

SEED = 20261124
EXAMPLES = settings.default.max_examples // 2  # per operation, from the profile (tests/conftest.py): 15, thorough 50
CONFIG = Path(__file__).with_name("schemathesis.toml")


def schemathesis_run(stack, tmp_path: Path, *options: str) -> str:
    """``schemathesis run`` on the served document against ``stack``; its report, which must say no issues."""
    schema = tmp_path / "openapi.json"
    schema.write_text(requests.get(f"{stack.api_url}/openapi.json", timeout=10).text)
    run = subprocess.run(
        [str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(CONFIG), "run", str(schema),
         "--url", stack.api_url, "-H", f"Authorization: Bearer {stack.keys['alpha']}", "--checks", "all",
         "--seed", str(SEED), "--max-examples", str(EXAMPLES), "--no-color", *options],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,  # its cache stays out of the tree
    )
    output = run.stdout + run.stderr
    print(output[-1500:])
    assert run.returncode == 0 and "No issues found" in output, output[-6000:]
    return output


def test_links_walked_statefully_pass_every_check(local_stack, tmp_path):
    document = requests.get(f"{local_stack.api_url}/openapi.json", timeout=10).json()
    links = {name for item in document["paths"].values() for method, operation in item.items() if method != "parameters"
             for response in operation["responses"].values() for name in response.get("links", {})}
    assert {"GetItem", "ReplaceItem", "PatchItem", "DeleteItem", "NextPage", "GetAttachment", "GetImport"} <= links
    output = schemathesis_run(local_stack, tmp_path, "--phases", "stateful", "--mode", "all")
    assert "✅ Stateful" in output


def test_negative_mode_passes_every_check(local_stack, tmp_path):
    """Requests the document forbids, for every operation: each refused as declared, never a 5xx."""
    output = schemathesis_run(local_stack, tmp_path, "--phases", "fuzzing", "--mode", "negative")
    assert "✅ Fuzzing" in output
