"""Create or update the resources stack from ``infra/template.yaml`` and read its outputs.

Used by the local stack (against the embedded emulator), by the tests (against moto's in-process
mock) and by the deploy script (against AWS), so all three build the same resources.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

TEMPLATE = Path(__file__).with_name("template.yaml")
STAGE_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,19}$")  # the template's Stage parameter

# Resource types the emulator's CloudFormation skips (it creates the rest of the stack). Bucket
# policies only deny plain-HTTP requests, which the emulator on loopback serves by design; the user
# pool and its client are built by the local stack from this template (local/userpool.py).
EMULATOR_SKIPPED_TYPES = ("AWS::S3::BucketPolicy", "AWS::Cognito::UserPool", "AWS::Cognito::UserPoolClient")

# A stack in this state was never created: it holds nothing and cannot be updated, only replaced.
_NEVER_CREATED = ("ROLLBACK_COMPLETE", "REVIEW_IN_PROGRESS")


class StackFailed(RuntimeError):
    """The stack operation ended in a failed state; the message carries CloudFormation's reasons."""


class StackBlocked(StackFailed):
    """The stack is in a state no deploy can proceed from; the message says what to do first."""


def blocked_reason(name: str, status: str) -> str | None:
    """What the operator must do before a stack in ``status`` can be deployed; None if nothing."""
    if status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS":
        return f"stack {name} is {status}: wait until it settles, then run the command again"
    if status == "UPDATE_ROLLBACK_FAILED":
        return (f"stack {name} is {status}: run 'aws cloudformation continue-update-rollback --stack-name {name}' "
                "(see its events in the CloudFormation console), then run the command again")
    if status in ("ROLLBACK_FAILED", "DELETE_FAILED"):
        return (f"stack {name} is {status}: delete it ('aws cloudformation delete-stack --stack-name {name}'; "
                "the table and data bucket are retained), then run the command again")
    return None


def stack_name(stage: str) -> str:
    return f"items-{stage}-resources"


def deploy(
    cloudformation: Any,
    stage: str,
    parameters: dict[str, str] | None = None,
    notify: Callable[[str], None] = lambda message: None,
) -> dict[str, str]:
    """Create the stage's stack (or update it) and wait; returns its outputs.

    A stack in a state it cannot be updated from raises ``StackBlocked`` before any change."""
    _quiet_emulator_gaps()
    name = stack_name(stage)
    params = [{"ParameterKey": "Stage", "ParameterValue": stage}]
    params += [{"ParameterKey": k, "ParameterValue": v} for k, v in (parameters or {}).items()]
    tags = [{"Key": "app", "Value": "items"}, {"Key": "stage", "Value": stage}]
    body = TEMPLATE.read_text()
    existing = _describe(cloudformation, name)
    reason = blocked_reason(name, existing["StackStatus"]) if existing is not None else None
    if reason is not None:
        raise StackBlocked(reason)
    if existing is not None and existing["StackStatus"] == "ROLLBACK_COMPLETE":
        notify(f"stack {name} was never created (ROLLBACK_COMPLETE): deleting it to create it again")
        cloudformation.delete_stack(StackName=name)
        _wait(cloudformation, "stack_delete_complete", name)
        existing = None
    if existing is None or existing["StackStatus"] in _NEVER_CREATED:
        cloudformation.create_stack(StackName=name, TemplateBody=body, Parameters=params, Tags=tags)
        _wait(cloudformation, "stack_create_complete", name)
    else:
        try:
            cloudformation.update_stack(StackName=name, TemplateBody=body, Parameters=params, Tags=tags)
        except cloudformation.exceptions.ClientError as exc:
            if "No updates are to be performed" not in str(exc):
                raise
        else:
            _wait(cloudformation, "stack_update_complete", name)
    return outputs(cloudformation, stage)


def outputs(cloudformation: Any, stage: str) -> dict[str, str]:
    described = _describe(cloudformation, stack_name(stage))
    if described is None:
        raise LookupError(f"stack {stack_name(stage)} does not exist")
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def app_environment(outputs: dict[str, str]) -> dict[str, str]:
    """The application's environment variables that name the stage's resources.

    Also what Chalice needs at import when it deploys: event source decorators name their queue
    and bucket, and API Gateway's preflight answer names the front end's origin.
    """
    return {
        "STAGE": outputs["Stage"],
        "TABLE_NAME": outputs["TableName"],
        "BUCKET_NAME": outputs["BucketName"],
        "QUEUE_URL": outputs["WorkQueueUrl"],
        "QUEUE_NAME": outputs["WorkQueueName"],
        "CORS_ALLOW_ORIGIN": outputs["FrontendOrigin"],
        # Empty where the emulator's CloudFormation has no Cognito (local/userpool.py builds the
        # pool for the local stack): then only API keys sign requests.
        "USER_POOL_ID": outputs.get("UserPoolId", ""),
        "USER_POOL_CLIENT_ID": outputs.get("UserPoolClientId", ""),
    }


def delete(cloudformation: Any, stage: str) -> bool:
    """Delete the stage's stack and wait; False if there was none. Retained resources stay."""
    name = stack_name(stage)
    if _describe(cloudformation, name) is None:
        return False
    cloudformation.delete_stack(StackName=name)
    _wait(cloudformation, "stack_delete_complete", name)
    return True


def _wait(cloudformation: Any, waiter: str, name: str) -> None:
    from botocore.exceptions import WaiterError

    try:
        cloudformation.get_waiter(waiter).wait(StackName=name, WaiterConfig={"Delay": 2, "MaxAttempts": 900})
    except WaiterError as exc:
        raise StackFailed(f"{name}: {waiter} failed: {'; '.join(failure_reasons(cloudformation, name)) or exc}") from exc


def failure_reasons(cloudformation: Any, name: str) -> list[str]:
    """The resource events that explain a failed operation, oldest first."""
    try:
        events = cloudformation.describe_stack_events(StackName=name)["StackEvents"]
    except cloudformation.exceptions.ClientError:
        return []
    failed = [e for e in events if str(e.get("ResourceStatus", "")).endswith("_FAILED")]
    return [f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason', e['ResourceStatus'])}" for e in reversed(failed)]


def _describe(cloudformation: Any, name: str) -> dict[str, Any] | None:
    try:
        stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
    except cloudformation.exceptions.ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    return stacks[0] if stacks else None


def _quiet_emulator_gaps() -> None:
    """Silence the emulator's notice about each skipped type (see EMULATOR_SKIPPED_TYPES).

    Only moto emits these; against AWS this changes nothing.
    """
    for resource_type in EMULATOR_SKIPPED_TYPES:
        warnings.filterwarnings("ignore", message=f"Tried to parse {resource_type} ", category=UserWarning)
    moto_logger = logging.getLogger("moto")
    if not any(isinstance(f, _SkippedTypeFilter) for f in moto_logger.filters):
        moto_logger.addFilter(_SkippedTypeFilter())


class _SkippedTypeFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (
            message.startswith("No Moto CloudFormation support for ")
            and message.rsplit(" ", 1)[-1] in EMULATOR_SKIPPED_TYPES
        )
