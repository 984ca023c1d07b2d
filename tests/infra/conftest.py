"""Infrastructure tests: the template, the deploy steps and the package, without an AWS account.

AWS calls go to moto's in-process mock, or to botocore's Stubber where moto does not model the
service well enough (Lambda event source mappings, API Gateway gateway responses and stages).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

REGION = "us-east-1"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def moto(aws_env: None) -> Iterator[None]:
    from moto import mock_aws

    with mock_aws():
        yield


@pytest.fixture
def isolated_process() -> Iterator[None]:
    """Chalice's config loader writes the stage's variables into os.environ and imports app.py;
    undo both, so the rest of the session sees the environment and modules it had."""
    environ = dict(os.environ)
    modules = {name: sys.modules.get(name) for name in ("app",)}
    yield
    os.environ.clear()
    os.environ.update(environ)
    for name, module in modules.items():
        if module is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = module
