"""``make mutation``: how many deliberate bugs the tests catch in the modules that guard access.

mutmut (configured in ``pyproject.toml``, ``[tool.mutmut]``) mutates the cursor, conditional-request
parsing and API-key modules, one change at a time, and runs the tests that exercise each change.
A mutant the tests fail on is killed; one they pass is a bug that would get through.

    python -m bench.mutation            # run mutmut (several minutes), write bench/mutation.json
    python -m bench.mutation --report   # print the last record

``make bench`` reads the record into its results (the ``mutation`` measure).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RECORD = ROOT / "bench" / "mutation.json"
MUTANTS = ROOT / "mutants"


def run() -> dict[str, Any]:
    shutil.rmtree(MUTANTS, ignore_errors=True)
    started = time.monotonic()
    workers = str(max(1, os.cpu_count() or 1))
    subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", workers], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    seconds = round(time.monotonic() - started, 1)
    subprocess.run([sys.executable, "-m", "mutmut", "export-cicd-stats"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    stats = json.loads((MUTANTS / "mutmut-cicd-stats.json").read_text())
    survivors = subprocess.run([sys.executable, "-m", "mutmut", "results"], cwd=ROOT, check=True,
                               capture_output=True, text=True).stdout.split()
    judged = stats["killed"] + stats["survived"] + stats["timeout"] + stats["suspicious"] + stats["segfault"]
    record = {
        "modules": ["chalicelib/store/cursor.py", "chalicelib/web/conditional.py", "chalicelib/auth/apikeys.py"],
        "mutants": stats["total"],
        "killed": stats["killed"] + stats["timeout"] + stats["segfault"],
        "survived": stats["survived"],
        "no_tests": stats["no_tests"],
        "kill_ratio": round((stats["killed"] + stats["timeout"] + stats["segfault"]) / judged, 3) if judged else 0.0,
        "survivors": [name.rstrip(":") for name in survivors if "__mutmut_" in name],
        "seconds": seconds,
    }
    RECORD.write_text(json.dumps(record, indent=2) + "\n")
    return record


def latest() -> dict[str, Any] | None:
    return json.loads(RECORD.read_text()) if RECORD.exists() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--report", action="store_true", help="print the last record instead of running")
    args = parser.parse_args(argv)
    record = latest() if args.report else run()
    if record is None:
        print("no mutation run recorded yet: make mutation")
        return 1
    summary = {k: v for k, v in record.items() if k != "survivors"}
    print(json.dumps(summary))
    for name in record["survivors"]:
        print(f"survived: {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
