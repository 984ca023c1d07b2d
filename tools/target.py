"""Where a command-line tool works: the local stack, a deployed stage, or a named emulator.

``add_arguments(parser)`` adds ``--local | --stage S | --table T [--endpoint-url U]``;
``outputs(args)`` points the AWS clients at that place and returns the resources stack's outputs
(``TableName``, ``UserPoolId``, ...).
"""

from __future__ import annotations

import argparse
import json
import os


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--local", action="store_true", help="the stack started by `make run`")
    where.add_argument("--stage", help="a deployed stage (reads its resources stack's outputs)")
    where.add_argument("--table", help="a table name, with --endpoint-url for an emulator")
    parser.add_argument("--endpoint-url", help="AWS endpoint override (with --table)")


def outputs(args: argparse.Namespace) -> dict[str, str]:
    if args.table:
        if args.endpoint_url:
            os.environ["AWS_ENDPOINT_URL"] = args.endpoint_url
        return {"TableName": str(args.table)}
    if args.local:
        from local.stack import state_file

        if not state_file().exists():
            raise SystemExit("the local stack is not running (start it with `make run`)")
        state = json.loads(state_file().read_text())
        os.environ.update(
            {
                "AWS_ENDPOINT_URL": state["endpoint_url"],
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
                "AWS_DEFAULT_REGION": "us-east-1",
            }
        )
        os.environ.pop("AWS_PROFILE", None)
        return {name: value for name, value in state.items() if isinstance(value, str)}
    import boto3

    from infra import stack

    return stack.outputs(boto3.client("cloudformation"), args.stage)
