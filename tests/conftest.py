from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.localstack import RunningStack, start_stack
from tests.unit import iam_audit

# How many examples a property test generates, unless it sets its own count: "bounded" (the default)
# keeps `make test` within its time budget; HYPOTHESIS_PROFILE=thorough runs them with more.
settings.register_profile("bounded", max_examples=30)
settings.register_profile("thorough", max_examples=100)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or "bounded")


def pytest_configure(config: pytest.Config) -> None:
    # Under pytest-xdist the IAM audit of the unit suite needs every worker's record: the controller
    # collects them and checks them together when all workers have finished (tests/unit/iam_audit.py).
    distributed = config.pluginmanager.hasplugin("xdist") and config.getoption("dist", default="no") != "no"
    if distributed and not hasattr(config, "workerinput"):
        config.pluginmanager.register(iam_audit.ControllerAudit(), "iam-audit-controller")


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)  # set on a pytest-xdist worker only
    if workeroutput is not None:
        record = iam_audit.export()
        if record is not None:
            workeroutput[iam_audit.WORKER_OUTPUT_KEY] = record


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """One real local stack (emulator, gateway and functions from the package, front end) shared by a test session."""
    stack = start_stack(Path(tmp_path_factory.mktemp("stack")))
    yield stack
    stack.stop()
