"""Create or update the resources stack from ``infra/template.yaml`` and read its outputs.

Used by the local stack (against the embedded emulator), by the tests (against moto's in-process
mock) and by the deploy script (against AWS), so all three build the same resources.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TEMPLATE = Path(__file__).with_name("template.yaml")


def stack_name(stage: str) -> str:
    return f"items-{stage}-resources"


def deploy(cloudformation: Any, stage: str, parameters: dict[str, str] | None = None) -> dict[str, str]:
    """Create the stage's stack (or update it) and wait; returns its outputs."""
    name = stack_name(stage)
    params = [{"ParameterKey": "Stage", "ParameterValue": stage}]
    params += [{"ParameterKey": k, "ParameterValue": v} for k, v in (parameters or {}).items()]
    body = TEMPLATE.read_text()
    existing = _describe(cloudformation, name)
    if existing is None or existing["StackStatus"] == "REVIEW_IN_PROGRESS":
        cloudformation.create_stack(StackName=name, TemplateBody=body, Parameters=params)
        cloudformation.get_waiter("stack_create_complete").wait(
            StackName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 600}
        )
    else:
        try:
            cloudformation.update_stack(StackName=name, TemplateBody=body, Parameters=params)
        except cloudformation.exceptions.ClientError as exc:
            if "No updates are to be performed" not in str(exc):
                raise
        else:
            cloudformation.get_waiter("stack_update_complete").wait(
                StackName=name, WaiterConfig={"Delay": 2, "MaxAttempts": 600}
            )
    return outputs(cloudformation, stage)


def outputs(cloudformation: Any, stage: str) -> dict[str, str]:
    described = _describe(cloudformation, stack_name(stage))
    if described is None:
        raise LookupError(f"stack {stack_name(stage)} does not exist")
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def _describe(cloudformation: Any, name: str) -> dict[str, Any] | None:
    try:
        stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
    except cloudformation.exceptions.ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    return stacks[0] if stacks else None
