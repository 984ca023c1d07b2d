"""People of the local stack's user pool, for the integration and browser tests."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import boto3

from tests.localstack import RunningStack


def pool_of(stack: RunningStack) -> dict[str, Any]:
    """The pool's client and ids, and the demo person, from the stack's state file."""
    state = json.loads(Path(stack.env["LOCAL_STATE_FILE"]).read_text())
    cognito = boto3.client("cognito-idp", endpoint_url=state["endpoint_url"], region_name="us-east-1",
                           aws_access_key_id="local", aws_secret_access_key="local")
    return {"cognito": cognito, "client_id": state["UserPoolClientId"], "pool_id": state["UserPoolId"],
            "demo": state["demo_user"]}


def code_for(stack: RunningStack, email: str, purpose: str, after: int = 0) -> str:
    """The latest code the stack 'e-mailed' to ``email`` for ``purpose``, logged after offset ``after``."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = re.findall(rf"\[mail\] {purpose} code for {re.escape(email.lower())}: (\d{{6}})", stack.log()[after:])
        if found:
            return str(found[-1])
        time.sleep(0.1)
    raise AssertionError(f"no {purpose} code for {email} in the stack's log")
