"""The functions' IAM policy for one stage, written from the resources stack's outputs.

Chalice's own generator (``autogen_policy``) reads only ``app.py`` and grants on ``Resource: "*"``.
This policy names the stage's own ARNs and only the actions the code performs on them; the test
suite records every AWS call the application makes and fails when one is not allowed here, or
when a grant here is used by nothing (tests/unit/test_iam_policy.py).

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

Run ``python -m infra.policy --stage dev`` to print the policy of a deployed stage.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from chalicelib.dynamo import DUE_INDEX

ROOT = Path(__file__).resolve().parent.parent


def policy_path(stage: str) -> Path:
    return ROOT / ".chalice" / f"policy-{stage}.json"


def cursor_secrets_parameter(stage: str) -> str:
    """The SecureString parameter holding the stage's cursor secrets (the functions read it)."""
    return f"/items/{stage}/cursor-secrets"


def function_names(app: Any, stage: str) -> list[str]:
    """The Lambda function names Chalice gives the app's handlers in ``stage``.

    The API handler is ``<app>-<stage>``; every other handler is ``<app>-<stage>-<handler>``.
    """
    prefix = f"{app.app_name}-{stage}"
    names = [prefix] if app.routes else []
    handlers = [*app.builtin_auth_handlers, *app.event_sources, *app.pure_lambda_functions]
    names += [f"{prefix}-{handler.name}" for handler in handlers]
    return sorted(set(names))


def document(outputs: Mapping[str, str], functions: Iterable[str]) -> dict[str, Any]:
    """The policy document granting the stage's functions what the code does, and no more."""
    _, partition, _, region, account = outputs["TableArn"].split(":")[:5]
    table = outputs["TableArn"]
    bucket = outputs["BucketArn"]
    queue = outputs["WorkQueueArn"]
    log_groups = [f"arn:{partition}:logs:{region}:{account}:log-group:/aws/lambda/{name}" for name in functions]
    parameter = f"arn:{partition}:ssm:{region}:{account}:parameter{cursor_secrets_parameter(outputs['Stage'])}"
    statements = [
        _allow(
            "TableItems",
            [
                "dynamodb:BatchGetItem",
                "dynamodb:BatchWriteItem",
                "dynamodb:DeleteItem",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:Query",
                "dynamodb:UpdateItem",
            ],
            [table],
        ),
        _allow("DueIndex", ["dynamodb:Query"], [f"{table}/index/{DUE_INDEX}"]),
        _allow("Objects", ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"], [f"{bucket}/*"]),
        _allow("ObjectListing", ["s3:ListBucket"], [bucket]),
        _allow("WorkQueueSend", ["sqs:GetQueueUrl", "sqs:SendMessage"], [queue]),
        _allow("WorkQueueConsume", ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"], [queue]),
        _allow("CursorSecrets", ["ssm:GetParameter"], [parameter]),
        _allow(
            "FunctionLogs",
            ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            [arn for group in log_groups for arn in (group, f"{group}:*")],
        ),
    ]
    return {"Version": "2012-10-17", "Statement": statements}


def write(path: Path, policy: Mapping[str, Any]) -> bool:
    """Write the policy file; False when it already held exactly this policy."""
    text = json.dumps(policy, indent=2) + "\n"
    if path.exists() and path.read_text() == text:
        return False
    path.write_text(text)
    return True


def _allow(sid: str, actions: list[str], resources: list[str]) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}


def main(argv: list[str] | None = None) -> int:
    import argparse

    import boto3

    from infra import deploy, stack

    parser = argparse.ArgumentParser(description="Print the IAM policy of a deployed stage.")
    parser.add_argument("--stage", required=True)
    args = parser.parse_args(argv)
    outputs = stack.outputs(boto3.client("cloudformation"), args.stage)
    app = deploy.ChaliceProject().config(args.stage).chalice_app
    print(json.dumps(document(outputs, function_names(app, args.stage)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
