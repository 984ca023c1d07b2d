"""Lighthouse on the front end, desktop and mobile: performance, accessibility, best practices, CLS.

    LIGHTHOUSE_BIN=/path/to/lighthouse python -m bench.lighthouse    # alone; make bench runs it too

Runs the pinned ``lighthouse`` npm package (``node_modules/.bin/lighthouse``, or ``LIGHTHOUSE_BIN``)
with Debian's Chromium against the local stack's front end (``make run``: gzip and revalidated
static files, local/frontend.py), on a tenant holding a page of tagged items, so the table, its
skeleton rows and the first page's arrival are what is measured. Mobile is Lighthouse's default
(a mid-range phone on a throttled network); desktop is its ``desktop`` preset.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CATEGORIES = ("performance", "accessibility", "best-practices")
FORM_FACTORS = ("desktop", "mobile")
ITEMS = 25

TARGETS = {
    **{(f"{form}_accessibility"): (">=", 100) for form in FORM_FACTORS},
    **{(f"{form}_best_practices"): (">=", 100) for form in FORM_FACTORS},
    **{(f"{form}_cls"): ("<=", 0.1) for form in FORM_FACTORS},
    "desktop_performance": (">=", 90),
}


def binary() -> Path:
    return Path(os.environ.get("LIGHTHOUSE_BIN") or ROOT / "node_modules" / ".bin" / "lighthouse")


def audit(url: str, form: str) -> dict[str, Any]:
    """One Lighthouse run: the scores (0–100) and the layout shift of ``url``."""
    command = [
        str(binary()), url, "--output=json", "--output-path=stdout", "--quiet",
        f"--only-categories={','.join(CATEGORIES)}",
        "--chrome-flags=--headless=new --no-sandbox --disable-gpu --no-first-run --disable-background-networking",
        *(["--preset=desktop"] if form == "desktop" else []),
    ]
    env = {**os.environ, "CHROME_PATH": CHROMIUM}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"lighthouse failed ({done.returncode}): {done.stderr[-2000:]}")
    report = json.loads(done.stdout)
    audits = report["audits"]
    result: dict[str, Any] = {
        f"{form}_{name.replace('-', '_')}": round(report["categories"][name]["score"] * 100) for name in CATEGORIES
    }
    result[f"{form}_cls"] = round(audits["cumulative-layout-shift"]["numericValue"], 4)
    result[f"{form}_lcp_ms"] = round(audits["largest-contentful-paint"]["numericValue"])
    result[f"{form}_tbt_ms"] = round(audits["total-blocking-time"]["numericValue"])
    failed = [
        key for key, entry in audits.items()
        if entry.get("score") is not None and entry["score"] < 1 and entry.get("scoreDisplayMode") in ("binary", "numeric")
        and any(ref["id"] == key for name in ("accessibility", "best-practices") for ref in report["categories"][name]["auditRefs"])
    ]
    if failed:
        result[f"{form}_failed_audits"] = sorted(failed)
    return result


def measure() -> dict[str, Any]:
    if not binary().exists():
        return {"missing": f"lighthouse is not installed at {binary()} (the pinned npm devDependency; or set LIGHTHOUSE_BIN)"}
    from tests.localstack import start_stack

    with tempfile.TemporaryDirectory() as tmp:
        stack = start_stack(Path(tmp))
        try:
            session = stack.session("alpha")
            for number in range(ITEMS):
                tags = [["travel", "receipts"], ["work"], []][number % 3]
                response = session.post(
                    f"{stack.api_url}/items", json={"name": f"Item {number + 1:02d}", "tags": tags}, timeout=10
                )
                response.raise_for_status()
            result: dict[str, Any] = {}
            for form in FORM_FACTORS:
                result.update(audit(stack.ui_url, form))
            return result
        finally:
            stack.stop()


def verdicts(result: dict[str, Any]) -> list[tuple[str, Any, str, bool]]:
    if "missing" in result:
        return [("lighthouse.installed", False, "== True", False)]
    rows = []
    for key, (op, bound) in TARGETS.items():
        value = result[key]
        rows.append((f"lighthouse.{key}", value, f"{op} {bound}", value <= bound if op == "<=" else value >= bound))
    return rows


def main() -> int:
    """Runs alone and records its figures under ``lighthouse`` in bench/results.json."""
    sys.path.insert(0, str(ROOT))
    result = measure()
    print(json.dumps(result, indent=2))
    results_path = ROOT / "bench" / "results.json"
    recorded = json.loads(results_path.read_text()) if results_path.exists() else {}
    results_path.write_text(json.dumps({**recorded, "lighthouse": result}, indent=2) + "\n")
    rows = verdicts(result)
    for name, value, target, ok in rows:
        print(f"{name:36} {value!s:>10}  {target:>10}  {'yes' if ok else 'NO'}")
    return 0 if all(ok for *_, ok in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
