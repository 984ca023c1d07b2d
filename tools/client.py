"""Generate the typed Python client from the served OpenAPI document (``make client``).

``python -m tools.client [OUT]`` writes ``/openapi.json`` as the app serves it to OUT/openapi.json
and runs ``openapi-python-client`` (pinned in requirements-dev.txt) on it: the package
``items_client`` in OUT (default build/client). Nothing in the generated code is edited by hand;
where the client would be wrong, the document is fixed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tools.openapi_lint import ROOT, write_document

DEFAULT_OUT = ROOT / "build" / "client"
PACKAGE = "items_client"


def generate(out: Path) -> Path:
    """Generate ``items_client`` under ``out`` afresh; returns the package's directory."""
    document = write_document(out / "openapi.json")
    package = out / PACKAGE
    shutil.rmtree(package, ignore_errors=True)
    bin_dir = Path(sys.executable).parent
    # The generator formats its output with ruff from PATH: the project's pinned one.
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    run = subprocess.run(
        [str(bin_dir / "openapi-python-client"), "generate", "--path", str(document), "--meta", "none",
         "--output-path", str(package)],
        cwd=out, env=env, capture_output=True, text=True, check=False,
    )
    if run.returncode != 0 or "Warning" in run.stdout or not (package / "client.py").is_file():
        raise SystemExit(f"openapi-python-client failed ({run.returncode}):\n{run.stdout}\n{run.stderr}")
    return package


def main(argv: list[str]) -> int:
    package = generate(Path(argv[0]).resolve() if argv else DEFAULT_OUT)
    print(f"generated {package}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
