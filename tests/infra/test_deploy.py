"""infra/deploy.py, step by step and end to end, against moto and botocore's Stubber."""

from __future__ import annotations

import json
import os
import shutil
import sys
import types
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from infra import deploy, policy, stack

ROOT = Path(__file__).resolve().parents[2]
API_ID = "a1b2c3d4e5"
API_URL = f"https://{API_ID}.execute-api.us-east-1.amazonaws.com/api/"
ORIGIN = "https://app.example.com"
DEFAULT_TEMPLATE = {"application/json": '{"message":$context.error.messageString}'}
MIB = 1024 * 1024
UUID = "6f1d2c3b-0a4e-4c5d-9e8f-7a6b5c4d3e2f"


def small_app() -> Any:
    """An app shaped like app.py: routes with CORS, the authorizer, an SQS consumer."""
    from chalice import AuthResponse, Chalice, CORSConfig

    app = Chalice(app_name="items")
    cors = CORSConfig(allow_origin=ORIGIN, allow_headers=["Authorization", "Content-Type"], expose_headers=["ETag"],
                      max_age=600)

    @app.authorizer()
    def bearer_authorizer(auth_request: Any) -> AuthResponse:
        return AuthResponse(routes=[], principal_id="anonymous")

    @app.route("/health", cors=cors)
    def health() -> dict[str, str]:
        return {}

    @app.on_sqs_message(queue="items-ci-work")
    def consume(event: Any) -> None:
        return None

    return app


class FakeConfig:
    api_gateway_stage = "api"

    def __init__(self, app: Any) -> None:
        self.chalice_app = app


class FakeProject:
    """Stands in for Chalice's deployer: records what it was asked to do."""

    def __init__(self, deployed: dict[str, Any]) -> None:
        self.app = small_app()
        self.deployed = deployed
        self.secrets: list[dict[str, str]] = []
        self.calls: list[tuple[str, str]] = []

    def config(self, stage: str, secret_environment: dict[str, str] | None = None) -> FakeConfig:
        self.secrets.append(dict(secret_environment or {}))
        return FakeConfig(self.app)

    def deploy(self, config: FakeConfig, stage: str) -> dict[str, Any]:
        self.calls.append(("deploy", stage))
        return self.deployed

    def delete(self, stage: str) -> None:
        self.calls.append(("delete", stage))


def deployed_values(queue_arn: str = "arn:aws:sqs:us-east-1:123456789012:items-ci-work") -> dict[str, Any]:
    function = "arn:aws:lambda:us-east-1:123456789012:function:items-ci"
    return {
        "resources": [
            {"name": "api_handler", "resource_type": "lambda_function", "lambda_arn": function},
            {"name": "consume-sqs-event-source", "resource_type": "sqs_event", "queue_arn": queue_arn,
             "event_uuid": UUID, "queue": "items-ci-work", "lambda_arn": f"{function}-consume"},
            {"name": "rest_api", "resource_type": "rest_api", "rest_api_id": API_ID, "rest_api_url": API_URL},
        ],
        "schema_version": "2.0",
        "backend": "api",
    }


@pytest.fixture
def clients(moto) -> deploy.Clients:
    return deploy.Clients(
        cloudformation=boto3.client("cloudformation"),
        ssm=boto3.client("ssm"),
        lambda_=boto3.client("lambda"),
        apigateway=boto3.client("apigateway"),
        logs=boto3.client("logs"),
        s3=boto3.client("s3"),
        dynamodb=boto3.client("dynamodb"),
    )


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / ".chalice" / "config.json"
    path.parent.mkdir()
    shutil.copy(ROOT / ".chalice" / "config.json", path)
    return path


# -- steps ------------------------------------------------------------------------------------

def test_resources_keep_the_front_end_origin_unless_told(clients):
    assert deploy.resources(clients.cloudformation, "ci", None)["FrontendOrigin"] == "*"
    assert deploy.resources(clients.cloudformation, "ci", ORIGIN)["FrontendOrigin"] == ORIGIN
    assert deploy.resources(clients.cloudformation, "ci", None)["FrontendOrigin"] == ORIGIN


def test_cursor_secrets_are_created_once(clients):
    first = deploy.cursor_secrets(clients.ssm, "ci")
    assert len(first) >= 40
    assert deploy.cursor_secrets(clients.ssm, "ci") == first
    parameter = clients.ssm.get_parameter(Name="/items/ci/cursor-secrets")["Parameter"]
    assert parameter["Type"] == "SecureString"
    assert deploy.cursor_secrets(clients.ssm, "other") != first


def test_cursor_secrets_created_concurrently_are_the_other_deploys(aws_env):
    ssm = boto3.client("ssm")
    name = "/items/ci/cursor-secrets"
    with Stubber(ssm) as stub:
        stub.add_client_error("get_parameter", "ParameterNotFound", expected_params={"Name": name, "WithDecryption": True})
        stub.add_client_error("put_parameter", "ParameterAlreadyExists")
        stub.add_response("get_parameter", {"Parameter": {"Name": name, "Value": "theirs"}})
        assert deploy.cursor_secrets(ssm, "ci") == "theirs"


def test_stage_config_is_merged_and_never_holds_secrets(config_path):
    before = json.loads(config_path.read_text())
    environment = {"STAGE": "dev", "TABLE_NAME": "items-dev", "CURSOR_SECRETS": "s3cret", "RATE_LIMIT_RPS": "5"}

    assert deploy.write_stage_config(config_path, "dev", environment) is True
    after = json.loads(config_path.read_text())
    variables = after["stages"]["dev"]["environment_variables"]
    assert variables == {**before["stages"]["dev"]["environment_variables"], "STAGE": "dev", "TABLE_NAME": "items-dev",
                         "RATE_LIMIT_RPS": "5"}
    assert "s3cret" not in config_path.read_text()
    assert after["stages"]["prod"] == before["stages"]["prod"]
    assert deploy.write_stage_config(config_path, "dev", environment) is False


def test_a_new_stage_gets_a_policy_file_per_function(config_path):
    deploy.write_stage_config(config_path, "staging", {"STAGE": "staging"}, ["api_handler", "bearer_authorizer"])
    staging = json.loads(config_path.read_text())["stages"]["staging"]
    assert staging == {
        "api_gateway_stage": "api",
        "lambda_functions": {"api_handler": {"iam_policy_file": "policy-staging-api_handler.json"},
                             "bearer_authorizer": {"iam_policy_file": "policy-staging-bearer_authorizer.json"}},
        "environment_variables": {"STAGE": "staging"},
    }


def test_batch_item_failures_are_enabled_once(aws_env):
    client = boto3.client("lambda")
    slept: list[float] = []
    with Stubber(client) as stub:
        stub.add_response("get_event_source_mapping", {"UUID": UUID, "FunctionResponseTypes": []}, {"UUID": UUID})
        stub.add_client_error("update_event_source_mapping", "ResourceInUseException")
        stub.add_response("update_event_source_mapping", {},
                          {"UUID": UUID, "FunctionResponseTypes": ["ReportBatchItemFailures"]})
        assert deploy.enable_batch_item_failures(client, deployed_values(), sleep=slept.append) == [UUID]
        stub.add_response("get_event_source_mapping", {"UUID": UUID, "FunctionResponseTypes": ["ReportBatchItemFailures"]})
        assert deploy.enable_batch_item_failures(client, deployed_values(), sleep=slept.append) == []
        stub.assert_no_pending_responses()
    assert slept == [3]


def test_a_mapping_that_stays_busy_fails_the_deploy(aws_env):
    client = boto3.client("lambda")
    with Stubber(client) as stub:
        stub.add_response("get_event_source_mapping", {"UUID": UUID})
        for _ in range(10):
            stub.add_client_error("update_event_source_mapping", "ResourceInUseException")
        with pytest.raises(client.exceptions.ResourceInUseException):
            deploy.enable_batch_item_failures(client, deployed_values(), sleep=lambda _: None)


def test_gateway_responses_are_problem_documents_and_the_stage_is_redeployed(clients):
    """Against moto: every gateway response is put once, then left alone."""
    from infra import gateway_responses

    api = clients.apigateway.create_rest_api(name="items")["id"]
    root = clients.apigateway.get_resources(restApiId=api)["items"][0]["id"]
    clients.apigateway.put_method(restApiId=api, resourceId=root, httpMethod="GET", authorizationType="NONE")
    clients.apigateway.put_integration(restApiId=api, resourceId=root, httpMethod="GET", type="MOCK")
    changed = deploy.ensure_gateway_responses(clients.apigateway, api, "api", ORIGIN)
    assert changed == [p["responseType"] for p in gateway_responses.put_parameters(ORIGIN)]
    failure = clients.apigateway.get_gateway_response(restApiId=api, responseType="AUTHORIZER_FAILURE")
    assert failure["statusCode"] == "503"
    assert failure["responseParameters"]["gatewayresponse.header.Retry-After"] == "'1'"
    assert failure["responseParameters"]["gatewayresponse.header.Access-Control-Allow-Origin"] == f"'{ORIGIN}'"
    assert failure["responseParameters"]["gatewayresponse.header.Content-Type"] == "'application/problem+json'"
    assert json.loads(failure["responseTemplates"]["application/json"])["request_id"] == "$context.requestId"
    assert len(clients.apigateway.get_deployments(restApiId=api)["items"]) == 1

    assert deploy.ensure_gateway_responses(clients.apigateway, api, "api", ORIGIN) == []
    assert len(clients.apigateway.get_deployments(restApiId=api)["items"]) == 1
    assert deploy.ensure_gateway_responses(clients.apigateway, api, "api", "https://other.example.com")
    assert len(clients.apigateway.get_deployments(restApiId=api)["items"]) == 2


def test_stage_throttling_is_set_when_it_differs(aws_env):
    client = boto3.client("apigateway")
    with Stubber(client) as stub:
        stub.add_response("get_stage", {"stageName": "api", "methodSettings": {}}, {"restApiId": API_ID, "stageName": "api"})
        stub.add_response(
            "update_stage",
            {},
            {"restApiId": API_ID, "stageName": "api", "patchOperations": [
                {"op": "replace", "path": "/*/*/throttling/rateLimit", "value": "50.0"},
                {"op": "replace", "path": "/*/*/throttling/burstLimit", "value": "100"},
            ]},
        )
        assert deploy.ensure_throttling(client, API_ID, "api", 50.0, 100) is True
        stub.add_response(
            "get_stage",
            {"stageName": "api", "methodSettings": {"*/*": {"throttlingRateLimit": 50.0, "throttlingBurstLimit": 100}}},
        )
        assert deploy.ensure_throttling(client, API_ID, "api", 50.0, 100) is False
        stub.assert_no_pending_responses()


def test_log_groups_get_a_retention(clients):
    clients.logs.create_log_group(logGroupName="/aws/lambda/items-ci")
    clients.logs.create_log_group(logGroupName="/aws/lambda/items-ci-old")
    functions = ["items-ci", "items-ci-bearer_authorizer"]
    assert deploy.ensure_log_retention(clients.logs, functions, 14) == ["/aws/lambda/items-ci", "/aws/lambda/items-ci-bearer_authorizer"]
    groups = {g["logGroupName"]: g.get("retentionInDays") for g in clients.logs.describe_log_groups()["logGroups"]}
    assert groups == {"/aws/lambda/items-ci": 14, "/aws/lambda/items-ci-bearer_authorizer": 14, "/aws/lambda/items-ci-old": None}
    assert deploy.ensure_log_retention(clients.logs, functions, 14) == []


# -- the commands -----------------------------------------------------------------------------

def test_destroy_keeps_the_data_unless_purged(clients, capsys):
    outputs = deploy.resources(clients.cloudformation, "ci", None)
    deploy.cursor_secrets(clients.ssm, "ci")
    for bucket in (outputs["BucketName"], outputs["FrontendBucketName"]):
        clients.s3.put_object(Bucket=bucket, Key="a/b.txt", Body=b"1")
        clients.s3.put_object(Bucket=bucket, Key="a/b.txt", Body=b"2")
        clients.s3.delete_object(Bucket=bucket, Key="a/b.txt")
    project = FakeProject(deployed_values())
    groups = ["/aws/lambda/items-ci", "/aws/lambda/items-ci-bearer_authorizer", "/aws/lambda/items-ci-consume"]
    for group in [*groups, "/aws/lambda/items-ci2", "/aws/lambda/items-cix-consume"]:
        clients.logs.create_log_group(logGroupName=group)

    deploy.destroy("ci", purge=False, clients=clients, project=project)
    assert project.calls == [("delete", "ci")]
    assert stack.outputs(clients.cloudformation, "ci") == outputs
    assert "kept the data" in capsys.readouterr().out
    assert len(clients.logs.describe_log_groups()["logGroups"]) == 5

    deploy.destroy("ci", purge=True, clients=clients, project=project)
    with pytest.raises(LookupError):
        stack.outputs(clients.cloudformation, "ci")
    assert clients.dynamodb.list_tables()["TableNames"] == []
    assert clients.s3.list_buckets()["Buckets"] == []
    with pytest.raises(clients.ssm.exceptions.ParameterNotFound):
        clients.ssm.get_parameter(Name="/items/ci/cursor-secrets")
    left = {g["logGroupName"] for g in clients.logs.describe_log_groups()["logGroups"]}
    assert left == {"/aws/lambda/items-ci2", "/aws/lambda/items-cix-consume"}, "other stages' logs stay"

    deploy.destroy("ci", purge=True, clients=clients, project=project)  # nothing left: still fine
    assert project.calls == [("delete", "ci")] * 3


def one_line_error(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err + captured.out
    return lines[0]


@pytest.mark.parametrize("stage", ["local", "test", "Prod", "x" * 21, "dev;rm"])
def test_stages_the_emulator_and_the_tests_use_are_refused(stage, capsys):
    assert deploy.main(["deploy", "--stage", stage]) == 2
    assert "is not allowed: a stage must match" in one_line_error(capsys)


@pytest.mark.parametrize("command", ["deploy", "destroy", "package"])
def test_a_missing_stage_says_how_to_name_one(command, capsys):
    assert deploy.main([command, "--stage", ""]) == 2
    assert one_line_error(capsys) == f"[deploy] error: name the stage: make {command} STAGE=dev"


def test_a_region_is_required(aws_env, monkeypatch, capsys):
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    assert deploy.main(["deploy", "--stage", "dev"]) == 2
    assert "no AWS region: set AWS_REGION" in one_line_error(capsys)


def test_credentials_are_required(aws_env, monkeypatch, capsys):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    assert deploy.main(["deploy", "--stage", "dev"]) == 2
    assert "no AWS credentials: set AWS_PROFILE" in one_line_error(capsys)


def test_aws_region_alone_is_enough(moto, monkeypatch, capsys):
    """docs/DEPLOY.md asks for AWS_REGION; botocore (and Chalice's session) reads AWS_DEFAULT_REGION."""
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    seen: list[str] = []

    def deploying(options: Any, clients: deploy.Clients, project: Any) -> str:
        seen.extend([clients.cloudformation.meta.region_name, os.environ["AWS_DEFAULT_REGION"],
                     boto3.session.Session().region_name])
        return API_URL

    monkeypatch.setattr(deploy, "deploy", deploying)
    assert deploy.main(["deploy", "--stage", "dev"]) == 0, capsys.readouterr().err
    assert seen == ["eu-west-1"] * 3


def test_prod_needs_a_front_end_origin_and_nothing_is_changed(moto, monkeypatch, capsys):
    monkeypatch.delenv("FRONTEND_ORIGIN", raising=False)
    assert deploy.main(["deploy", "--stage", "prod"]) == 2
    assert one_line_error(capsys) == (
        "[deploy] error: stage 'prod' needs the front end's origin: add FRONTEND_ORIGIN=https://app.example.com"
    )
    assert boto3.client("cloudformation").describe_stacks()["Stacks"] == []
    assert boto3.client("ssm").describe_parameters()["Parameters"] == []


def test_an_invalid_front_end_origin_is_refused_before_any_change(moto, monkeypatch, capsys):
    monkeypatch.setenv("FRONTEND_ORIGIN", "app.example.com/path")
    assert deploy.main(["deploy", "--stage", "dev"]) == 2
    assert "FRONTEND_ORIGIN: CORS_ALLOW_ORIGIN must be '*' or one origin" in one_line_error(capsys)
    assert boto3.client("cloudformation").describe_stacks()["Stacks"] == []


@pytest.mark.parametrize("status", ["UPDATE_ROLLBACK_FAILED", "DELETE_FAILED", "UPDATE_IN_PROGRESS"])
def test_a_stack_in_a_failed_state_stops_the_deploy_before_any_change(aws_env, status):
    client = boto3.client("cloudformation")
    name = stack.stack_name("dev")
    with Stubber(client) as stub:
        stub.add_response("describe_stacks", {"Stacks": [
            {"StackName": name, "StackStatus": status, "CreationTime": "2026-01-01T00:00:00Z"}]})
        with pytest.raises(stack.StackBlocked, match=f"stack {name} is {status}: .*then run the command again"):
            stack.deploy(client, "dev")
        stub.assert_no_pending_responses()  # nothing but the one look


def test_a_blocked_stack_is_one_line_from_the_command(moto, monkeypatch, capsys):
    def blocked(*args: Any, **kwargs: Any) -> dict[str, str]:
        raise stack.StackBlocked("stack items-dev-resources is UPDATE_ROLLBACK_FAILED: run ...")

    monkeypatch.setattr(stack, "deploy", blocked)
    assert deploy.main(["deploy", "--stage", "dev"]) == 1
    assert one_line_error(capsys) == "[deploy] failed: stack items-dev-resources is UPDATE_ROLLBACK_FAILED: run ..."
    assert boto3.client("ssm").describe_parameters()["Parameters"] == []


def test_options_from_the_environment():
    options = deploy.options_from_environment(
        "dev", {"FRONTEND_ORIGIN": ORIGIN, "API_THROTTLE_RATE": "20", "RATE_LIMIT_BURST": "9", "HOME": "/root"}
    )
    assert options == deploy.Options(stage="dev", frontend_origin=ORIGIN, throttle_rate=20.0, throttle_burst=200,
                                     log_retention_days=30, settings={"RATE_LIMIT_BURST": "9"})
    with pytest.raises(deploy.Refused, match="API_THROTTLE_BURST"):
        deploy.options_from_environment("dev", {"API_THROTTLE_BURST": "lots"})


# -- Chalice itself -----------------------------------------------------------------------------

@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """The deployable part of the project, in a scratch directory (Chalice writes into .chalice/)."""
    copy = tmp_path / "project"
    copy.mkdir()
    shutil.copy(ROOT / "app.py", copy / "app.py")
    shutil.copy(ROOT / "requirements.txt", copy / "requirements.txt")
    shutil.copytree(ROOT / "chalicelib", copy / "chalicelib", ignore=shutil.ignore_patterns("__pycache__"))
    (copy / ".chalice").mkdir()
    shutil.copy(ROOT / ".chalice" / "config.json", copy / ".chalice" / "config.json")
    # Chalice caches the dependencies it downloads for Lambda here; share the project's cache.
    cache = ROOT / ".chalice" / "deployments"
    cache.mkdir(exist_ok=True)
    (copy / ".chalice" / "deployments").symlink_to(cache)
    return copy


FAKE_OUTPUTS = {
    "Stage": "ci",
    "TableName": "items-ci",
    "TableArn": "arn:aws:dynamodb:us-east-1:123456789012:table/items-ci",
    "BucketName": "items-ci-123456789012-us-east-1",
    "BucketArn": "arn:aws:s3:::items-ci-123456789012-us-east-1",
    "WorkQueueName": "items-ci-work",
    "WorkQueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/items-ci-work",
    "WorkQueueArn": "arn:aws:sqs:us-east-1:123456789012:items-ci-work",
    "EventDeadLetterQueueArn": "arn:aws:sqs:us-east-1:123456789012:items-ci-events-dlq",
    "FrontendOrigin": ORIGIN,
}


def test_secrets_reach_chalice_in_memory_only(project_copy, aws_env, isolated_process):
    config_path = project_copy / ".chalice" / "config.json"
    deploy.write_stage_config(config_path, "ci", stack.app_environment(FAKE_OUTPUTS))
    config = deploy.ChaliceProject(project_copy).config("ci", {"CURSOR_SECRETS": "s3cret"})
    assert config.environment_variables["CURSOR_SECRETS"] == "s3cret"
    assert config.environment_variables["TABLE_NAME"] == "items-ci"
    assert config.environment_variables["POWERTOOLS_SERVICE_NAME"] == "items-service"
    assert config.autogen_policy is False
    assert "s3cret" not in config_path.read_text()


def test_known_failures_end_the_command_with_their_reason(moto, monkeypatch, capsys):
    def failing(*args: Any, **kwargs: Any) -> str:
        raise stack.StackFailed("items-dev-resources: stack_update_complete failed: Table: limit exceeded")

    monkeypatch.setattr(deploy, "deploy", failing)
    assert deploy.main(["deploy", "--stage", "dev"]) == 1
    assert one_line_error(capsys) == (
        "[deploy] failed: items-dev-resources: stack_update_complete failed: Table: limit exceeded")


def test_the_policy_of_a_deployed_stage_can_be_printed(clients, isolated_process, monkeypatch, capsys):
    monkeypatch.setattr(sys, "path", list(sys.path))
    outputs = deploy.resources(clients.cloudformation, "ci", None)
    assert deploy.main(["policies", "--stage", "ci"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == policy.documents(outputs, sys.modules["app"].app, "ci")
    logs = printed["bearer_authorizer"]["Statement"][-1]["Resource"]
    assert "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/items-ci-bearer_authorizer" in logs


def test_the_deploy_guide_lists_every_policy_statement():

    guide = (ROOT / "docs" / "DEPLOY.md").read_text()
    handlers = [types.SimpleNamespace(name=name) for name in policy.FUNCTION_GRANTS if name != policy.API_HANDLER]
    app = types.SimpleNamespace(app_name="items", routes={"/": {}}, builtin_auth_handlers=handlers, event_sources=[],
                                pure_lambda_functions=[])
    documents = policy.documents(FAKE_OUTPUTS, app, "ci")
    assert set(documents) == set(policy.FUNCTION_GRANTS)
    for handler, document in documents.items():
        assert f"`{handler}`" in guide, handler
        for statement in document["Statement"]:
            assert f"`{statement['Sid']}`" in guide, statement["Sid"]
            for action in statement["Action"]:
                assert action.split(":")[1] in guide, action


def test_chalice_imports_the_app_with_the_stages_environment(project_copy, aws_env, isolated_process, monkeypatch):
    """What the event sources and the CORS preflight name is read by app.py at import: Chalice
    must import it with the stage's variables in the environment, not a copy of it."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in ("STAGE", "BUCKET_NAME", "QUEUE_URL", "QUEUE_NAME", "CORS_ALLOW_ORIGIN", "TABLE_NAME"):
        monkeypatch.delenv(name, raising=False)
    sys.modules.pop("app", None)
    outputs = {**FAKE_OUTPUTS, "Stage": "prod", "BucketName": "items-prod-123456789012-us-east-1",
               "WorkQueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/items-prod-work"}
    deploy.write_stage_config(project_copy / ".chalice" / "config.json", "prod", stack.app_environment(outputs))

    app = deploy.ChaliceProject(project_copy).config("prod").chalice_app

    assert {source.bucket for source in app.event_sources if hasattr(source, "bucket")} == {outputs["BucketName"]}
    assert {source.queue for source in app.event_sources if hasattr(source, "queue")} == {"items-prod-work"}
    origins = {route.cors.allow_origin for methods in app.routes.values() for route in methods.values() if route.cors}
    assert origins == {ORIGIN}


def test_a_chalice_deployment_error_is_one_line(moto, monkeypatch, capsys):
    from chalice.deploy.deployer import ChaliceDeploymentError

    def failing(*args: Any, **kwargs: Any) -> str:
        raise ChaliceDeploymentError(ValueError("the role is not ready"))

    monkeypatch.setattr(deploy, "deploy", failing)
    assert deploy.main(["deploy", "--stage", "dev"]) == 1
    line = one_line_error(capsys)
    assert line.startswith("[deploy] failed: chalice: ERROR - While deploying your chalice application")
    assert "the role is not ready" in line


def test_the_front_end_is_published_exactly_and_only_when_it_changed(clients):
    bucket = "items-ci-web"
    clients.s3.create_bucket(Bucket=bucket)
    clients.s3.put_object(Bucket=bucket, Key="old.js", Body=b"gone")
    files = deploy.frontend_files(API_URL)
    assert json.loads(files["config.js"].decode().split("=", 1)[1].rstrip(";\n")) == {"apiUrl": API_URL, "apiKey": ""}
    assert "index.html" in files and "js/api.js" in files

    assert sorted(deploy.publish_files(clients.s3, bucket, files)) == sorted([*files, "old.js"])
    assert deploy.publish_files(clients.s3, bucket, files) == []
    changed = {**files, "config.js": b"window.ITEMS_CONFIG = {};\n"}
    assert deploy.publish_files(clients.s3, bucket, changed) == ["config.js"]
    listed = {o["Key"] for o in clients.s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert listed == set(files)
    head = clients.s3.head_object(Bucket=bucket, Key="js/api.js")
    assert head["ContentType"] == "text/javascript; charset=utf-8" and head["CacheControl"] == "public, max-age=300"


def test_a_handler_without_a_policy_is_refused_not_guessed():
    import types

    app = types.SimpleNamespace(app_name="items", routes={}, event_sources=[], pure_lambda_functions=[],
                                builtin_auth_handlers=[types.SimpleNamespace(name="new_handler")])
    with pytest.raises(policy.UnknownFunction, match="no policy for new_handler: add its grants to FUNCTION_GRANTS"):
        policy.documents(FAKE_OUTPUTS, app, "ci")


def test_storage_event_failures_go_to_the_events_dead_letter_queue_once(aws_env):
    client = boto3.client("lambda")
    function = "arn:aws:lambda:us-east-1:123456789012:function:items-ci-on_attachment_uploaded"
    deployed = deployed_values()
    deployed["resources"].append({"name": "on_attachment_uploaded-s3event", "resource_type": "s3_event",
                                  "bucket": "items-ci-bucket", "lambda_arn": function})
    dlq = FAKE_OUTPUTS["EventDeadLetterQueueArn"]
    wanted = {"OnFailure": {"Destination": dlq}}
    with Stubber(client) as stub:
        stub.add_client_error("get_function_event_invoke_config", "ResourceNotFoundException")
        stub.add_response("put_function_event_invoke_config", {},
                          {"FunctionName": function, "MaximumRetryAttempts": 2, "DestinationConfig": wanted})
        assert deploy.ensure_event_failure_destination(client, deployed, dlq) == [function]
        stub.add_response("get_function_event_invoke_config", {"MaximumRetryAttempts": 2, "DestinationConfig": wanted})
        assert deploy.ensure_event_failure_destination(client, deployed, dlq) == []
        stub.assert_no_pending_responses()
