from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.localstack import RunningStack, start_stack


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """One real local stack (emulator, gateway and functions from the package, front end) shared by a test session."""
    stack = start_stack(Path(tmp_path_factory.mktemp("stack")))
    yield stack
    stack.stop()
