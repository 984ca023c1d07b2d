"""Stateful Schemathesis from the document's links, against the local stack, with every check.

Schemathesis's stateful phase follows the OpenAPI ``links`` (create -> get / replace / patch /
delete, a page -> the next page, an attachment or import -> its reads), generating every step from
the served document in both positive and negative mode, with a fixed seed, and runs every check it
has on every response: no 5xx, status codes, content types, bodies and required headers as
declared, data the document allows accepted and data it forbids refused, authentication not
ignored, deleted resources gone. tests/integration/schemathesis-stateful.toml holds the only
relaxations, each with its reason.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import requests

from tests.localstack import ROOT

SEED = 20261124
EXAMPLES = 30
CONFIG = Path(__file__).with_name("schemathesis-stateful.toml")


def test_links_walked_statefully_pass_every_check(local_stack, tmp_path):
    document = requests.get(f"{local_stack.api_url}/openapi.json", timeout=10).json()
    links = {name for item in document["paths"].values() for method, operation in item.items() if method != "parameters"
             for response in operation["responses"].values() for name in response.get("links", {})}
    assert {"GetItem", "ReplaceItem", "PatchItem", "DeleteItem", "NextPage", "GetAttachment", "GetImport"} <= links
    schema = tmp_path / "openapi.json"
    schema.write_text(json.dumps(document))
    events = tmp_path / "events.ndjson"
    run = subprocess.run(
        [str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(CONFIG), "run", str(schema),
         "--url", local_stack.api_url, "-H", f"Authorization: Bearer {local_stack.keys['alpha']}",
         "--phases", "stateful", "--checks", "all", "--mode", "all", "--seed", str(SEED),
         "--max-examples", str(EXAMPLES), "--no-color",
         "--report", "ndjson", "--report-ndjson-path", str(events)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )
    output = run.stdout + run.stderr
    print(output[-3000:])
    assert run.returncode == 0, output[-6000:]
    assert "Stateful" in output and "No issues found" in output, output[-3000:]
