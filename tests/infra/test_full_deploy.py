"""``python -m infra.deploy`` end to end, as an operator runs it, against an AWS emulator on loopback.

One module-scoped deploy serves every assertion: the resources stack, the stage configuration and
the per-function policies, Chalice's real deployer, the post-deploy steps, the front end. Then a
second deploy (which must change nothing), ``destroy`` and ``destroy --purge``.

The command runs in a copy of the project (Chalice writes into ``.chalice/``), in its own
process, with only ``AWS_REGION`` set, as docs/DEPLOY.md says.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.infra import emulator

ROOT = Path(__file__).resolve().parents[2]
STAGE = "ci"
ORIGIN = "https://app.example.com"
REGION = "eu-west-1"
PROTECTED_EXEMPT = {("/health", "GET"), ("/openapi.json", "GET")}


def copy_project(target: Path) -> Path:
    """The deployable project and its deploy tooling, in a scratch directory."""
    target.mkdir()
    for name in ("app.py", "requirements.txt"):
        shutil.copy(ROOT / name, target / name)
    for name in ("chalicelib", "infra", "frontend"):
        shutil.copytree(ROOT / name, target / name, ignore=shutil.ignore_patterns("__pycache__", "node_modules"))
    (target / ".chalice").mkdir()
    shutil.copy(ROOT / ".chalice" / "config.json", target / ".chalice" / "config.json")
    # Chalice caches the Lambda-compatible dependencies it downloads here; share the project's cache.
    cache = ROOT / ".chalice" / "deployments"
    cache.mkdir(exist_ok=True)
    (target / ".chalice" / "deployments").symlink_to(cache)
    return target


def command_environment(endpoint: str, **extra: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CORS_", "STAGE", "FRONTEND_"))}
    for name in ("TABLE_NAME", "BUCKET_NAME", "QUEUE_URL", "QUEUE_NAME", "CURSOR_SECRETS", "COVERAGE_PROCESS_START"):
        environment.pop(name, None)
    environment.update({
        "AWS_REGION": REGION,  # only this one, as docs/DEPLOY.md says
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        **extra,
    })
    return environment


def run_deploy(project: Path, endpoint: str, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra.deploy", *args],
        check=False, cwd=project, env=command_environment(endpoint, **extra), capture_output=True, text=True, timeout=900,
    )


class Deployed:
    def __init__(self, aws: emulator.Emulator, project: Path, first: subprocess.CompletedProcess[str], seconds: float):
        self.aws = aws
        self.project = project
        self.first = first
        self.seconds = seconds

    def client(self, service: str) -> Any:
        return self.aws.client(service, REGION)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory) -> Iterator[Deployed]:
    project = copy_project(tmp_path_factory.mktemp("deploy") / "project")
    with emulator.running() as aws:
        started = time.monotonic()
        first = run_deploy(project, aws.url, "deploy", "--stage", STAGE, FRONTEND_ORIGIN=ORIGIN)
        seconds = time.monotonic() - started
        assert first.returncode == 0, first.stdout + first.stderr
        yield Deployed(aws, project, first, seconds)


def test_deploy_prints_the_api_url(deployed):
    print(deployed.first.stdout, deployed.seconds)
    assert "API URL: " in deployed.first.stdout
