"""Each function's IAM policy for one stage, written from the resources stack's outputs.

Chalice's own generator (``autogen_policy``) reads only ``app.py`` and grants on ``Resource: "*"``.
Here every function (the API handler, the authorizer, each event handler) gets its own role and
policy (Chalice's per-function ``iam_policy_file``), naming the stage's own ARNs and only the
actions that function's code performs on them: the authorizer reads key records and nothing
else; only the queue consumer receives and deletes work messages. The test suite records every
AWS call the application makes, with the function that made it, and fails when that function's
policy does not allow it, or when a grant is used by nothing (tests/unit/test_iam_policy.py).

How API operations map to IAM actions matters for reading it:

- ``TransactWriteItems`` is authorised as the ``PutItem``/``UpdateItem``/``DeleteItem``/
  ``ConditionCheckItem`` it contains; ``Query`` on an index needs the index's ARN.
- ``HeadObject`` is ``s3:GetObject``; a presigned POST upload is the signer's ``s3:PutObject``.
  ``s3:ListBucket`` makes a missing key answer 404 instead of 403.
- ``SendMessageBatch`` is ``sqs:SendMessage``; Lambda's event source mapping polls the work queue
  with the function's role (``ReceiveMessage``, ``DeleteMessage``, ``GetQueueAttributes``).
- The table, buckets and queues are encrypted with AWS owned or managed keys, so no ``kms:*``;
  the cursor secrets' SecureString uses the AWS managed key ``aws/ssm``, whose key policy lets
  the account's principals decrypt through SSM, so ``ssm:GetParameter`` on it is enough.

Run ``python -m infra.deploy policies --stage dev`` to print the policies of a deployed stage.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chalicelib.files.uploads import IMPORT_WORK_PREFIX, IMPORTS_PREFIX
from chalicelib.store.layout import DUE_INDEX, NAME_INDEX, UPDATED_INDEX

ROOT = Path(__file__).resolve().parent.parent


API_HANDLER = "api_handler"  # Chalice's name for the function serving every route
KEY_RECORD_PREFIX = "KEY#"  # chalicelib/auth/apikeys.py: the partition of a key's hash record


def policy_file_name(stage: str, handler: str) -> str:
    """The policy file of one function, in .chalice/ (Chalice's per-function ``iam_policy_file``)."""
    return f"policy-{stage}-{handler}.json"


def cursor_secrets_parameter(stage: str) -> str:
    """The SecureString parameter holding the stage's cursor secrets (the functions read it)."""
    return f"/items/{stage}/cursor-secrets"


def handlers(app: Any, stage: str) -> dict[str, str]:
    """Chalice's function names (the keys of ``lambda_functions`` in its config) and the Lambda
    function names it gives them in ``stage``: the API handler is ``<app>-<stage>``, every other
    handler ``<app>-<stage>-<handler>``."""
    prefix = f"{app.app_name}-{stage}"
    named = {API_HANDLER: prefix} if app.routes else {}
    for handler in [*app.builtin_auth_handlers, *app.event_sources, *app.pure_lambda_functions]:
        named[handler.name] = f"{prefix}-{handler.name}"
    return dict(sorted(named.items()))


def function_names(app: Any, stage: str) -> list[str]:
    """The Lambda function names of the app's handlers in ``stage``."""
    return sorted(handlers(app, stage).values())


class UnknownFunction(Exception):
    """app.py has a handler no policy here is written for: no grant is guessed."""


def documents(outputs: Mapping[str, str], app: Any, stage: str) -> dict[str, dict[str, Any]]:
    """Each function's own policy: what its code does, on this stage's resources, and no more.

    Keyed by Chalice's function name. A handler this module does not know raises
    ``UnknownFunction`` instead of being granted a guess.
    """
    grants = _grants(outputs)
    named = handlers(app, stage)
    unknown = sorted(set(named) - set(FUNCTION_GRANTS))
    if unknown:
        raise UnknownFunction(f"no policy for {', '.join(unknown)}: add its grants to FUNCTION_GRANTS in infra/policy.py")
    return {
        handler: {
            "Version": "2012-10-17",
            "Statement": [*(grants[sid] for sid in FUNCTION_GRANTS[handler]), TRACES, _logs(outputs, function)],
        }
        for handler, function in named.items()
    }


# What each function's code does (tests/unit/test_iam_policy.py checks every recorded call of a
# function against its own policy, and that each grant is used by that function).
FUNCTION_GRANTS: dict[str, tuple[str, ...]] = {
    API_HANDLER: ("ApiTableItems", "FindIndexes", "Objects", "ObjectListing", "CursorSecrets"),
    "bearer_authorizer": ("KeyRecords",),
    "on_attachment_uploaded": ("UploadTableItems", "UploadedObjects", "ObjectListing", "EventFailures"),
    "on_import_uploaded": ("ImportTableItems", "UploadedObjects", "ImportCheckpoints", "ObjectListing", "WorkQueueSend",
                           "EventFailures"),
    "on_work_message": ("ConsumerTableItems", "WorkQueueConsume"),
    "run_cleanup": ("CleanupTableItems", "DueIndex", "UploadedObjects", "ObjectListing"),
}


def _grants(outputs: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    _, partition, _, region, account = outputs["TableArn"].split(":")[:5]
    table = outputs["TableArn"]
    bucket = outputs["BucketArn"]
    queue = outputs["WorkQueueArn"]
    parameter = f"arn:{partition}:ssm:{region}:{account}:parameter{cursor_secrets_parameter(outputs['Stage'])}"

    def table_items(sid: str, *actions: str) -> dict[str, Any]:
        return _allow(sid, sorted(f"dynamodb:{action}" for action in actions), [table])

    statements = [
        table_items("ApiTableItems", "BatchGetItem", "DeleteItem", "GetItem", "PutItem", "Query", "UpdateItem"),
        table_items("UploadTableItems", "GetItem", "UpdateItem"),
        table_items("ImportTableItems", "BatchWriteItem", "GetItem", "UpdateItem"),
        # DeleteItem: a row that replaces an expired item removes that item's tag index records.
        table_items("ConsumerTableItems", "BatchGetItem", "DeleteItem", "GetItem", "PutItem", "Query", "UpdateItem"),
        table_items("CleanupTableItems", "BatchWriteItem", "DeleteItem", "GetItem", "Query", "UpdateItem"),
        {
            **_allow("KeyRecords", ["dynamodb:GetItem"], [table]),
            # Only the records of API keys' hashes: never a tenant's data.
            "Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{KEY_RECORD_PREFIX}*"]}},
        },
        _allow("DueIndex", ["dynamodb:Query"], [f"{table}/index/{DUE_INDEX}"]),
        _allow("FindIndexes", ["dynamodb:Query"], [f"{table}/index/{NAME_INDEX}", f"{table}/index/{UPDATED_INDEX}"]),
        _allow("Objects", ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"], [f"{bucket}/*"]),
        _allow("UploadedObjects", ["s3:DeleteObject", "s3:GetObject"], [f"{bucket}/*"]),
        # A long import continues in a new invocation: its file is copied onto itself (a new
        # ObjectCreated event) and the ids it has seen are kept under the work prefix.
        _allow("ImportCheckpoints", ["s3:PutObject"], [f"{bucket}/{IMPORTS_PREFIX}*", f"{bucket}/{IMPORT_WORK_PREFIX}*"]),
        _allow("ObjectListing", ["s3:ListBucket"], [bucket]),
        _allow("WorkQueueSend", ["sqs:SendMessage"], [queue]),
        # Lambda sends a storage event that failed every attempt to the on-failure destination with
        # the function's role (infra/deploy.py).
        _allow("EventFailures", ["sqs:SendMessage"], [outputs["EventDeadLetterQueueArn"]]),
        _allow("WorkQueueConsume", ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:ReceiveMessage"],
               [queue]),
        _allow("CursorSecrets", ["ssm:GetParameter"], [parameter]),
    ]
    return {statement["Sid"]: statement for statement in statements}


# Active tracing (.chalice/config.json "xray"): Lambda sends each invocation's segments with the
# function's role. X-Ray's write actions support no resource-level permissions, hence "*"
# ("Actions, resources, and condition keys for AWS X-Ray", Service Authorization Reference).
TRACES: dict[str, Any] = {
    "Sid": "FunctionTraces", "Effect": "Allow", "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
    "Resource": ["*"],
}


def _logs(outputs: Mapping[str, str], function: str) -> dict[str, Any]:
    _, partition, _, region, account = outputs["TableArn"].split(":")[:5]
    group = f"arn:{partition}:logs:{region}:{account}:log-group:/aws/lambda/{function}"
    return _allow("FunctionLogs", ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"], [group, f"{group}:*"])


def write_all(directory: Path, stage: str, policies: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Write each function's policy file into ``directory``; returns the files changed."""
    return [
        policy_file_name(stage, handler)
        for handler, policy in policies.items()
        if write(directory / policy_file_name(stage, handler), policy)
    ]


def write(path: Path, policy: Mapping[str, Any]) -> bool:
    """Write the policy file; False when it already held exactly this policy."""
    text = json.dumps(policy, indent=2) + "\n"
    if path.exists() and path.read_text() == text:
        return False
    path.write_text(text)
    return True


def _allow(sid: str, actions: list[str], resources: list[str]) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}
