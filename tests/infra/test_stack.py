"""infra/stack.py against moto's CloudFormation: the stack the local stack and the tests use."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber

from infra import stack
from tests.infra.test_template import REQUIRED_OUTPUTS


@pytest.fixture
def cloudformation(moto):
    return boto3.client("cloudformation")


def test_template_deploys_and_builds_what_it_declares(cloudformation):
    outputs = stack.deploy(cloudformation, "ci", {"FrontendOrigin": "https://app.example.com"})

    assert set(outputs) >= REQUIRED_OUTPUTS
    assert outputs["FrontendOrigin"] == "https://app.example.com"
    table = boto3.client("dynamodb").describe_table(TableName=outputs["TableName"])["Table"]
    assert table["TableArn"] == outputs["TableArn"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["DeletionProtectionEnabled"] is True
    assert sorted(i["IndexName"] for i in table["GlobalSecondaryIndexes"]) == ["due-index", "name-index", "updated-index"]
    attributes = boto3.client("sqs").get_queue_attributes(QueueUrl=outputs["WorkQueueUrl"], AttributeNames=["All"])
    attributes = attributes["Attributes"]
    assert attributes["VisibilityTimeout"] == "360"
    assert attributes["SqsManagedSseEnabled"] == "true"
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": outputs["DeadLetterQueueArn"], "maxReceiveCount": 5
    }
    s3 = boto3.client("s3")
    for bucket in (outputs["BucketName"], outputs["FrontendBucketName"]):
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
        assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    tags = cloudformation.describe_stacks(StackName=stack.stack_name("ci"))["Stacks"][0]["Tags"]
    assert {"Key": "stage", "Value": "ci"} in tags


def test_deploying_again_converges(cloudformation):
    first = stack.deploy(cloudformation, "ci")
    assert stack.deploy(cloudformation, "ci") == first
    changed = stack.deploy(cloudformation, "ci", {"FrontendOrigin": "https://other.example.com"})
    assert changed == {**first, "FrontendOrigin": "https://other.example.com"}


def test_app_environment_names_the_stage_resources(cloudformation):
    outputs = stack.deploy(cloudformation, "ci")
    assert stack.app_environment(outputs) == {
        "STAGE": "ci",
        "TABLE_NAME": "items-ci",
        "BUCKET_NAME": outputs["BucketName"],
        "QUEUE_URL": outputs["WorkQueueUrl"],
        "QUEUE_NAME": "items-ci-work",
        "CORS_ALLOW_ORIGIN": "*",
        # The emulator's CloudFormation has no Cognito: a deployed stage names its pool here.
        "USER_POOL_ID": "",
        "USER_POOL_CLIENT_ID": "",
    }


def test_app_environment_names_the_user_pool_of_a_stage_that_has_one(cloudformation):
    outputs = {**stack.deploy(cloudformation, "ci"), "UserPoolId": "eu-west-1_abc", "UserPoolClientId": "client123"}
    environment = stack.app_environment(outputs)
    assert (environment["USER_POOL_ID"], environment["USER_POOL_CLIENT_ID"]) == ("eu-west-1_abc", "client123")


def test_deleting_the_stack_keeps_the_data(cloudformation):
    outputs = stack.deploy(cloudformation, "ci")
    assert stack.delete(cloudformation, "ci") is True
    assert stack.delete(cloudformation, "ci") is False
    with pytest.raises(LookupError):
        stack.outputs(cloudformation, "ci")
    assert outputs["TableName"] in boto3.client("dynamodb").list_tables()["TableNames"]
    boto3.client("s3").head_bucket(Bucket=outputs["BucketName"])
    assert not boto3.client("sqs").list_queues().get("QueueUrls")


def test_a_failed_operation_says_why(aws_env):
    client = boto3.client("cloudformation")
    name = stack.stack_name("ci")
    with Stubber(client) as stub:
        stub.add_client_error("describe_stacks", "ValidationError", f"Stack with id {name} does not exist")
        stub.add_response("create_stack", {"StackId": "id"})
        stub.add_response(
            "describe_stacks",
            {"Stacks": [{"StackName": name, "CreationTime": "2026-01-01T00:00:00Z", "StackStatus": "ROLLBACK_COMPLETE"}]},
        )
        stub.add_response(
            "describe_stack_events",
            {
                "StackEvents": [
                    {"StackId": "id", "EventId": "2", "StackName": name, "Timestamp": "2026-01-01T00:00:02Z",
                     "LogicalResourceId": name, "ResourceStatus": "ROLLBACK_COMPLETE"},
                    {"StackId": "id", "EventId": "1", "StackName": name, "Timestamp": "2026-01-01T00:00:01Z",
                     "LogicalResourceId": "Bucket", "ResourceStatus": "CREATE_FAILED",
                     "ResourceStatusReason": "items-ci-... already exists"},
                ]
            },
        )
        with pytest.raises(stack.StackFailed, match=r"Bucket: items-ci-\.\.\. already exists"):
            stack.deploy(client, "ci")


def test_a_stack_that_never_got_created_is_replaced(cloudformation):
    name = stack.stack_name("ci")
    with Stubber(cloudformation) as stub:
        stub.add_response(
            "describe_stacks",
            {"Stacks": [{"StackName": name, "CreationTime": "2026-01-01T00:00:00Z", "StackStatus": "ROLLBACK_COMPLETE"}]},
        )
        stub.add_response("delete_stack", {}, {"StackName": name})
        stub.add_response(
            "describe_stacks",
            {"Stacks": [{"StackName": name, "CreationTime": "2026-01-01T00:00:00Z", "StackStatus": "DELETE_COMPLETE"}]},
        )
        stub.add_response("create_stack", {"StackId": "id"})
        stub.add_response(
            "describe_stacks",
            {"Stacks": [{"StackName": name, "CreationTime": "2026-01-01T00:00:00Z", "StackStatus": "CREATE_COMPLETE"}]},
        )
        stub.add_response(
            "describe_stacks",
            {"Stacks": [{"StackName": name, "CreationTime": "2026-01-01T00:00:00Z", "StackStatus": "CREATE_COMPLETE",
                         "Outputs": [{"OutputKey": "Stage", "OutputValue": "ci"}]}]},
        )
        assert stack.deploy(cloudformation, "ci") == {"Stage": "ci"}
        stub.assert_no_pending_responses()
