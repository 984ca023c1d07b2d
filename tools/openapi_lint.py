"""The OpenAPI lint gate: Redocly CLI (recommended) and Spectral (spectral:oas) on the served document.

``python -m tools.openapi_lint [OUT]`` fetches ``/openapi.json`` from the app (Chalice's test client,
no AWS needed for that route), writes it to OUT (default build/openapi/openapi.json), runs both
linters from node_modules (``make node-tools`` installs them, pinned by package-lock.json) and
exits 1 on any finding, error or warning. Suppressions live in redocly.yaml,
.redocly.lint-ignore.yaml and .spectral.yaml, each with its reason.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "build" / "openapi" / "openapi.json"
BIN = ROOT / "node_modules" / ".bin"


def served_document() -> dict[str, Any]:
    from chalice.test import Client

    import app

    with Client(app.app, stage_name="local") as client:
        response = client.http.get("/openapi.json")
    if response.status_code != 200:
        raise SystemExit(f"/openapi.json answered {response.status_code}: {response.body!r}")
    document: dict[str, Any] = json.loads(response.body)
    return document


def write_document(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(served_document(), indent=2) + "\n")
    return out


def redocly(path: Path) -> list[str]:
    run = subprocess.run([str(BIN / "redocly"), "lint", str(path.relative_to(ROOT)), "--format=json"],
                         cwd=ROOT, capture_output=True, text=True, check=False)
    report = json.loads(run.stdout[run.stdout.index("{"):])
    return [f"redocly {p['severity']} {p['ruleId']}: {p['message']} at {p['location'][0]['pointer']}"
            for p in report["problems"] if p.get("ignored") is not True]


def spectral(path: Path) -> list[str]:
    run = subprocess.run([str(BIN / "spectral"), "lint", str(path.relative_to(ROOT)), "--format=json", "--quiet",
                          "--ruleset", str(ROOT / ".spectral.yaml"), "--fail-severity=hint"],
                         cwd=ROOT, capture_output=True, text=True, check=False)
    if run.returncode not in (0, 1):
        raise SystemExit(f"spectral failed ({run.returncode}):\n{run.stdout}\n{run.stderr}")
    findings = json.loads(run.stdout) if run.stdout.strip() else []
    severities = {0: "error", 1: "warning", 2: "info", 3: "hint"}
    return [f"spectral {severities[f['severity']]} {f['code']}: {f['message']} at /{'/'.join(map(str, f['path']))}"
            for f in findings]


def main(argv: list[str]) -> int:
    path = write_document(Path(argv[0]).resolve() if argv else DEFAULT_OUT)
    findings = redocly(path) + spectral(path)
    for finding in findings:
        print(finding)
    print(f"openapi lint: {len(findings)} findings (Redocly recommended, Spectral spectral:oas) on {path.name}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
