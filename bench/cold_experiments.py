"""Where the service's cold start goes: ``python -m bench.cold_experiments [--rounds N]``.

Not part of ``make bench``: it answers "what would this change win?" for docs/PERFORMANCE.md.
Every variant runs in a fresh process (``bench/experiment_child.py``), interleaved with a floor (a
bare boto3 ``GetItem``) in rotating order; it prints medians, wall and CPU time, as ratios to the
floor within each round:

- ``base``: the service as it is, bytecode caches present;
- ``package`` / ``package+pyc``: the service run from a Lambda-like package, ``app.py``,
  ``chalicelib/``, ``chalice/{__init__,app}.py`` and the dependencies of requirements.txt (boto3
  and botocore are the runtime's), without bytecode (Lambda's ``/var/task`` is read-only, so
  nothing is cached between cold starts) and with bytecode compiled ahead (unchecked-hash);
- ``lazyauth``: an authorizer app that imports only what the authorizer needs;
- ``nodocs``: botocore without ``botocore.docs`` (stubbed before the import);
- ``deferbuild``: every pydantic model with ``defer_build=True`` (a question of the time when the
  POST validated with the models; it now validates with pydantic-core alone, so this variant only
  adds pydantic's import to it).
"""

from __future__ import annotations

import argparse
import compileall
import importlib.metadata
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer", "urllib3", "python-dateutil", "six"}


def _requirements(names: list[str]) -> set[str]:
    """Distributions needed by ``names`` (no extras), less what the Lambda runtime provides."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen or name in RUNTIME_PROVIDED:
            continue
        seen.add(name)
        for requirement in importlib.metadata.distribution(name).requires or []:
            if "extra ==" not in requirement:
                todo.append(re.split(r"[ ;<>=!~\[]", requirement, maxsplit=1)[0])
    return seen


def build_package(dest: Path, compiled: bool) -> Path:
    """A Lambda-like package: the app's sources and the packaged dependencies, as ``chalice package`` lays them."""
    dest.mkdir(parents=True)
    shutil.copy(ROOT / "app.py", dest / "app.py")
    shutil.copytree(ROOT / "chalicelib", dest / "chalicelib", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    import chalice.app

    (dest / "chalice").mkdir()
    for name in ("__init__.py", "app.py"):
        shutil.copy(Path(chalice.app.__file__).with_name(name), dest / "chalice" / name)
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    wanted = [re.split(r"[ ;<>=!~\[]", line.strip(), maxsplit=1)[0] for line in lines if line.strip() and not line.startswith("#")]
    for name in _requirements(wanted):
        distribution = importlib.metadata.distribution(name)
        for file in distribution.files or []:
            parts = Path(str(file)).parts
            if "__pycache__" in parts or str(file).endswith(".pyc") or parts[0].startswith("..") or parts[0].endswith(".dist-info"):
                continue
            target = dest / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(distribution.locate_file(file), target)
    if compiled:
        compileall.compile_dir(dest, quiet=1, invalidation_mode=compileall.py_compile.PycInvalidationMode.UNCHECKED_HASH)
    return dest


def _run(variant: str, action: str, cwd: Path, env: dict[str, str], package: bool) -> dict[str, Any]:
    child_env = dict(env)
    if package:
        child_env["PYTHONDONTWRITEBYTECODE"] = "1"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "experiment_child.py"), variant, action], cwd=cwd,
                          env=child_env, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode:
        raise RuntimeError(f"{variant} {action} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=11)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from bench.run import Environment

    env = Environment()
    try:
        from chalicelib.auth import apikeys
        from chalicelib.config.settings import get_settings
        from chalicelib.items.service import ItemService

        item = ItemService(get_settings()).create("bench-experiments", {"name": "x", "data": {"n": 1}})
        _key_id, key = apikeys.create(env.table, "bench-experiments")
        child_env = {**os.environ, "BENCH_TENANT": "bench-experiments", "BENCH_ITEM": item.id, "BENCH_KEY": key,
                     "LOG_LEVEL": "INFO"}
        child_env.pop("PYTHONDONTWRITEBYTECODE", None)
        with tempfile.TemporaryDirectory() as work:
            source = build_package(Path(work) / "package", compiled=False)
            compiled = build_package(Path(work) / "package-pyc", compiled=True)
            jobs: list[tuple[str, str, str, Path, bool]] = [
                ("floor", "floor", "get", ROOT, False),
                ("base", "base", "get", ROOT, False), ("base", "base", "auth", ROOT, False), ("base", "base", "post", ROOT, False),
                ("package", "base", "get", source, True), ("package", "base", "post", source, True),
                ("package+pyc", "base", "get", compiled, True), ("package+pyc", "base", "post", compiled, True),
                ("lazyauth", "lazyauth", "auth", ROOT, False),
                ("nodocs", "nodocs", "get", ROOT, False), ("nodocs", "nodocs", "auth", ROOT, False),
                ("deferbuild", "deferbuild", "post", ROOT, False),
            ]
            for _label, variant, action, cwd, package in jobs:  # unmeasured: caches written where allowed
                _run(variant, action, cwd, child_env, package)
            samples: dict[int, list[dict[str, Any]]] = {n: [] for n in range(len(jobs))}
            for index in range(args.rounds):
                order = list(range(len(jobs)))
                shift = index % len(jobs)
                for n in order[shift:] + order[:shift]:
                    _label, variant, action, cwd, package = jobs[n]
                    samples[n].append(_run(variant, action, cwd, child_env, package))
    finally:
        env.close()
    floor = samples[0]
    print(f"{'variant':14} {'action':6} {'wall ms':>8} {'cpu ms':>8} {'wall/floor':>10} {'cpu/floor':>10} {'modules':>8}")
    for n, (label, _variant, action, _cwd, _package) in enumerate(jobs):
        wall = statistics.median(s["ms"] for s in samples[n])
        cpu = statistics.median(s["cpu_ms"] for s in samples[n])
        wall_ratio = statistics.median(s["ms"] / f["ms"] for s, f in zip(samples[n], floor, strict=True))
        cpu_ratio = statistics.median(s["cpu_ms"] / f["cpu_ms"] for s, f in zip(samples[n], floor, strict=True))
        print(f"{label:14} {action:6} {wall:8.1f} {cpu:8.1f} {wall_ratio:10.3f} {cpu_ratio:10.3f} {samples[n][0]['modules']:8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
