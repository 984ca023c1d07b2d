"""The stage's IAM policy allows every AWS call the application made in this run, and no more.

The calls are recorded by tests/unit/iam_audit.py over the whole unit suite; this module runs
last (tests/unit/conftest.py orders it so). A call the policy does not allow fails here, as does a
grant that nothing uses, so the policy follows the code in both directions.
"""

from __future__ import annotations

import json

import pytest

from infra import policy as stage_policy
from tests.unit import iam_audit

# Grants for features that API.md specifies and whose code is not on this branch yet: each entry
# must be unused today, and fails the test the moment its feature exercises it (then delete it).
AWAITING_FEATURES: dict[tuple[str, str], str] = {}


@pytest.fixture(scope="module")
def outputs(aws_mock):
    import boto3

    from infra import stack

    return stack.outputs(boto3.client("cloudformation"), "test")


@pytest.fixture(scope="module")
def functions(app_module):
    return stage_policy.function_names(app_module.app, "test")


@pytest.fixture(scope="module")
def policy(outputs, functions):
    return stage_policy.document(outputs, functions)


@pytest.fixture(scope="module")
def needed(app_module, functions, outputs):
    return set(iam_audit.RECORDED) | iam_audit.platform_requirements(app_module.app, functions, outputs)


def test_every_recorded_call_is_allowed(policy):
    if not iam_audit.RECORDED and not iam_audit.full_suite():
        pytest.skip("no application call ran in this selection")
    assert iam_audit.RECORDED, "the whole unit suite ran and no AWS call was recorded: the recorder is not installed"
    denied = sorted(
        f"{req.action} on {req.resource} ({req.operation}, first in {test})"
        for req, test in iam_audit.RECORDED.items()
        if not iam_audit.allowed(policy, req.action, req.resource)
    )
    assert not denied, "the stage policy (infra/policy.py) does not allow:\n" + "\n".join(denied)


def test_no_grant_goes_unused(policy, needed):
    if not iam_audit.full_suite():
        pytest.skip("a grant is unused only if the whole unit suite ran without it")
    unused = {
        (statement["Sid"], action)
        for statement in policy["Statement"]
        for action in statement["Action"]
        if not any(
            req.action == action and iam_audit.statement_allows(statement, req.action, req.resource) for req in needed
        )
    }
    granted_for_nothing = sorted(unused - set(AWAITING_FEATURES))
    assert not granted_for_nothing, f"granted but used by nothing the tests exercise: {granted_for_nothing}"
    arrived = sorted(set(AWAITING_FEATURES) - unused)
    assert not arrived, f"now exercised by the tests; remove from AWAITING_FEATURES: {arrived}"


def test_every_function_gets_its_logs_and_nothing_else(policy, needed):
    for req in needed:
        if req.action.startswith("logs:"):
            assert iam_audit.allowed(policy, req.action, req.resource), req


def test_policy_is_scoped_to_the_stage(policy, outputs, functions):
    log_prefix = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/"
    parameter = f"arn:aws:ssm:us-east-1:123456789012:parameter{stage_policy.cursor_secrets_parameter('test')}"
    own = (outputs["TableArn"], outputs["BucketArn"], outputs["WorkQueueArn"], parameter)
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        for action in statement["Action"]:
            assert "*" not in action, action
        for resource in statement["Resource"]:
            assert resource != "*"
            if resource.startswith(log_prefix):
                name = resource.removeprefix(log_prefix).removesuffix(":*")
                assert name in functions, resource
            else:
                assert resource.startswith(own), resource
                assert resource in own or resource.startswith(tuple(f"{arn}/" for arn in own)), resource


def test_policy_names_this_stage_only(policy):
    assert not iam_audit.allowed(policy, "dynamodb:GetItem", "arn:aws:dynamodb:us-east-1:123456789012:table/items-prod")
    assert not iam_audit.allowed(policy, "s3:GetObject", "arn:aws:s3:::items-prod-123456789012-us-east-1/a")
    assert not iam_audit.allowed(policy, "sqs:SendMessage", "arn:aws:sqs:us-east-1:123456789012:items-test-work-dlq")
    assert not iam_audit.allowed(
        policy, "logs:PutLogEvents", "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/items-testing:log-stream:x"
    )
    assert not iam_audit.allowed(policy, "dynamodb:Scan", "arn:aws:dynamodb:us-east-1:123456789012:table/items-test")
    assert not iam_audit.allowed(policy, "dynamodb:DeleteTable", "arn:aws:dynamodb:us-east-1:123456789012:table/items-test")


def test_policy_file_is_rewritten_only_when_it_changes(tmp_path, policy):
    path = tmp_path / "policy-test.json"
    assert stage_policy.write(path, policy) is True
    assert json.loads(path.read_text()) == policy
    assert stage_policy.write(path, policy) is False


# -- the recorder itself ------------------------------------------------------------------------

@pytest.fixture
def as_application():
    """Run a snippet as if app.py made the calls, and forget what it recorded afterwards."""
    before = dict(iam_audit.RECORDED)

    def run(source: str, **names):
        iam_audit.RECORDED.clear()
        exec(compile(source, iam_audit.APP_FILE, "exec"), dict(names))
        return set(iam_audit.RECORDED)

    yield run
    iam_audit.RECORDED.clear()
    iam_audit.RECORDED.update(before)


def test_application_calls_are_recorded_and_test_calls_are_not(as_application, outputs):
    from chalicelib import apikeys, aws

    key = {"pk": {"S": "T#nobody"}, "sk": {"S": "ITEM#none"}}
    recorded = as_application(
        "client.get_item(TableName=table, Key=key)", client=aws.dynamodb(), table=outputs["TableName"], key=key
    )
    assert iam_audit.RECORDED
    aws.dynamodb().get_item(TableName=outputs["TableName"], Key=key)
    aws.dynamodb().query(
        TableName=outputs["TableName"], KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "T#x"}}
    )
    assert set(iam_audit.RECORDED) == recorded

    iam_audit.RECORDED.clear()
    assert apikeys.authenticate("isk_" + "x" * 40, outputs["TableName"]) is None  # a service, called by a test
    assert set(iam_audit.RECORDED) == {
        iam_audit.Requirement("dynamodb:GetItem", outputs["TableArn"], "dynamodb.GetItem"),
    }
    assert recorded == {
        iam_audit.Requirement("dynamodb:GetItem", outputs["TableArn"], "dynamodb.GetItem"),
    }


def test_operations_map_to_the_actions_iam_checks(as_application, outputs):
    from chalicelib import aws

    table, bucket, queue = outputs["TableName"], outputs["BucketName"], outputs["WorkQueueUrl"]
    aws.s3().put_object(Bucket=bucket, Key="imports/x.csv", Body=b"name\n")
    recorded = as_application(
        """
dynamodb.transact_write_items(TransactItems=[
    {"Put": {"TableName": table, "Item": {"pk": {"S": "T#iam"}, "sk": {"S": "ITEM#1"}}}},
    {"ConditionCheck": {"TableName": table, "Key": {"pk": {"S": "T#iam"}, "sk": {"S": "ITEM#2"}},
                        "ConditionExpression": "attribute_not_exists(pk)"}},
])
dynamodb.query(TableName=table, IndexName="due-index", KeyConditionExpression="due_pk = :p",
               ExpressionAttributeValues={":p": {"S": "DUE#0"}})
s3.head_object(Bucket=bucket, Key="imports/x.csv")
s3.generate_presigned_post(Bucket=bucket, Key="attachments/a/b")
s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "attachments/a/b"})
s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "imports/x.csv"}]})
sqs.send_message_batch(QueueUrl=queue, Entries=[{"Id": "1", "MessageBody": "{}"}])
""",
        dynamodb=aws.dynamodb(), s3=aws.s3(), sqs=aws.sqs(), table=table, bucket=bucket, queue=queue,
    )
    arn = outputs["BucketArn"]
    assert {(req.action, req.resource) for req in recorded} == {
        ("dynamodb:PutItem", outputs["TableArn"]),
        ("dynamodb:ConditionCheckItem", outputs["TableArn"]),
        ("dynamodb:Query", f"{outputs['TableArn']}/index/due-index"),
        ("s3:GetObject", f"{arn}/imports/x.csv"),
        ("s3:ListBucket", arn),
        ("s3:PutObject", f"{arn}/attachments/a/b"),
        ("s3:GetObject", f"{arn}/attachments/a/b"),
        ("s3:DeleteObject", f"{arn}/imports/x.csv"),
        ("sqs:SendMessage", outputs["WorkQueueArn"]),
    }


def test_evaluator_matches_like_iam():
    document = {
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:Get*"], "Resource": ["arn:aws:s3:::b/in/*"]},
            {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/in/secret"},
        ]
    }
    assert iam_audit.allowed(document, "S3:getobject", "arn:aws:s3:::b/in/x/y")
    assert not iam_audit.allowed(document, "s3:GetObject", "arn:aws:s3:::b/out")
    assert not iam_audit.allowed(document, "s3:GetObject", "arn:aws:s3:::b/in/secret")
    assert not iam_audit.allowed(document, "s3:PutObject", "arn:aws:s3:::b/in/x")
    with pytest.raises(ValueError, match="Condition"):
        iam_audit.allowed({"Statement": [{**document["Statement"][0], "Condition": {}}]}, "s3:GetObject", "x")
