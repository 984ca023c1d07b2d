"""infra/deploy.py, step by step and end to end, against moto and botocore's Stubber."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import sys
import types
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

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
    assert after["stages"]["dev"]["iam_policy_file"] == "policy-dev.json"
    assert deploy.write_stage_config(config_path, "dev", environment) is False


def test_a_new_stage_gets_its_own_policy_file(config_path):
    deploy.write_stage_config(config_path, "staging", {"STAGE": "staging"})
    staging = json.loads(config_path.read_text())["stages"]["staging"]
    assert staging == {"api_gateway_stage": "api", "iam_policy_file": "policy-staging.json",
                       "environment_variables": {"STAGE": "staging"}}


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


def test_cors_headers_come_from_the_apps_routes():
    assert deploy.cors_headers(small_app()) == {
        "Access-Control-Allow-Origin": ORIGIN,
        "Access-Control-Allow-Headers": "Authorization,Content-Type,X-Amz-Date,X-Amz-Security-Token,X-Api-Key",
        "Access-Control-Expose-Headers": "ETag",
    }


def expect_gateway_responses(stub: Stubber, current: dict[str, str]) -> None:
    for response_type in deploy.GATEWAY_RESPONSE_TYPES:
        stub.add_response(
            "get_gateway_response",
            {"responseType": response_type, "responseParameters": current, "responseTemplates": DEFAULT_TEMPLATE},
            {"restApiId": API_ID, "responseType": response_type},
        )


def test_gateway_responses_carry_cors_headers_and_the_stage_is_redeployed(aws_env):
    client = boto3.client("apigateway")
    headers = deploy.cors_headers(small_app())
    wanted = {
        "gatewayresponse.header.Access-Control-Allow-Headers":
            "'Authorization,Content-Type,X-Amz-Date,X-Amz-Security-Token,X-Api-Key'",
        "gatewayresponse.header.Access-Control-Allow-Origin": f"'{ORIGIN}'",
        "gatewayresponse.header.Access-Control-Expose-Headers": "'ETag'",
    }
    assert deploy.gateway_response_parameters(headers) == wanted
    with Stubber(client) as stub:
        for response_type in deploy.GATEWAY_RESPONSE_TYPES:
            stub.add_response(
                "get_gateway_response",
                {"responseType": response_type, "defaultResponse": True, "responseTemplates": DEFAULT_TEMPLATE},
            )
            stub.add_response(
                "put_gateway_response",
                {},
                {"restApiId": API_ID, "responseType": response_type, "responseParameters": wanted,
                 "responseTemplates": DEFAULT_TEMPLATE},
            )
        stub.add_response("create_deployment", {"id": "d1"}, {"restApiId": API_ID, "stageName": "api", "description": ANY})
        assert deploy.ensure_gateway_responses(client, API_ID, "api", headers) is True

        expect_gateway_responses(stub, wanted)
        assert deploy.ensure_gateway_responses(client, API_ID, "api", headers) is False
        stub.assert_no_pending_responses()


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

def stub_post_deploy(lambda_stub: Stubber, api_stub: Stubber, first: bool) -> None:
    wanted = deploy.gateway_response_parameters(deploy.cors_headers(small_app()))
    if first:
        lambda_stub.add_response("get_event_source_mapping", {"UUID": UUID})
        lambda_stub.add_response("update_event_source_mapping", {},
                                 {"UUID": UUID, "FunctionResponseTypes": ["ReportBatchItemFailures"]})
        for response_type in deploy.GATEWAY_RESPONSE_TYPES:
            api_stub.add_response("get_gateway_response", {"responseType": response_type, "defaultResponse": True})
            api_stub.add_response("put_gateway_response", {})
        api_stub.add_response("create_deployment", {"id": "d1"})
        api_stub.add_response("get_stage", {"stageName": "api"})
        api_stub.add_response("update_stage", {})
    else:
        lambda_stub.add_response("get_event_source_mapping", {"UUID": UUID, "FunctionResponseTypes": ["ReportBatchItemFailures"]})
        expect_gateway_responses(api_stub, wanted)
        api_stub.add_response(
            "get_stage",
            {"stageName": "api", "methodSettings": {"*/*": {"throttlingRateLimit": 100.0, "throttlingBurstLimit": 200}}},
        )


def test_deploy_end_to_end_and_again(clients, config_path, capsys):
    project = FakeProject(deployed_values())
    options = deploy.Options(stage="ci", frontend_origin=ORIGIN, settings={"RATE_LIMIT_RPS": "20"})

    with Stubber(clients.lambda_) as lambda_stub, Stubber(clients.apigateway) as api_stub:
        stub_post_deploy(lambda_stub, api_stub, first=True)
        assert deploy.deploy(options, clients, project, config_path) == API_URL
        lambda_stub.assert_no_pending_responses()
        api_stub.assert_no_pending_responses()

        outputs = stack.outputs(clients.cloudformation, "ci")
        variables = json.loads(config_path.read_text())["stages"]["ci"]["environment_variables"]
        assert variables == {**stack.app_environment(outputs), "RATE_LIMIT_RPS": "20",
                             "CURSOR_SECRETS_PARAMETER": "/items/ci/cursor-secrets"}
        assert variables["CORS_ALLOW_ORIGIN"] == ORIGIN
        secret = clients.ssm.get_parameter(Name="/items/ci/cursor-secrets", WithDecryption=True)["Parameter"]["Value"]
        assert project.secrets == [{}]  # the functions read the parameter; no secret in their configuration
        assert secret not in config_path.read_text()
        written = json.loads((config_path.parent / "policy-ci.json").read_text())
        assert written == policy.document(outputs, ["items-ci", "items-ci-bearer_authorizer", "items-ci-consume"])
        assert project.calls == [("deploy", "ci")]
        groups = clients.logs.describe_log_groups()["logGroups"]
        assert {g["logGroupName"] for g in groups} == {"/aws/lambda/items-ci", "/aws/lambda/items-ci-bearer_authorizer",
                                                       "/aws/lambda/items-ci-consume"}
        first_output = capsys.readouterr().out
        assert f"API URL: {API_URL}" in first_output

        config_before = config_path.read_text()
        stub_post_deploy(lambda_stub, api_stub, first=False)
        assert deploy.deploy(options, clients, project, config_path) == API_URL
        lambda_stub.assert_no_pending_responses()
        api_stub.assert_no_pending_responses()
    assert config_path.read_text() == config_before
    again = capsys.readouterr().out
    assert "written" not in again and "retention" not in again and "CORS headers" not in again
    assert project.secrets[1] == project.secrets[0]


def test_destroy_keeps_the_data_unless_purged(clients, capsys):
    outputs = deploy.resources(clients.cloudformation, "ci", None)
    deploy.cursor_secrets(clients.ssm, "ci")
    for bucket in (outputs["BucketName"], outputs["FrontendBucketName"]):
        clients.s3.put_object(Bucket=bucket, Key="a/b.txt", Body=b"1")
        clients.s3.put_object(Bucket=bucket, Key="a/b.txt", Body=b"2")
        clients.s3.delete_object(Bucket=bucket, Key="a/b.txt")
    project = FakeProject(deployed_values())

    deploy.destroy("ci", purge=False, clients=clients, project=project)
    assert project.calls == [("delete", "ci")]
    assert stack.outputs(clients.cloudformation, "ci") == outputs
    assert "kept the data" in capsys.readouterr().out

    deploy.destroy("ci", purge=True, clients=clients, project=project)
    with pytest.raises(LookupError):
        stack.outputs(clients.cloudformation, "ci")
    assert clients.dynamodb.list_tables()["TableNames"] == []
    assert clients.s3.list_buckets()["Buckets"] == []
    with pytest.raises(clients.ssm.exceptions.ParameterNotFound):
        clients.ssm.get_parameter(Name="/items/ci/cursor-secrets")

    deploy.destroy("ci", purge=True, clients=clients, project=project)  # nothing left: still fine
    assert project.calls == [("delete", "ci")] * 3


@pytest.mark.parametrize("stage", ["local", "test", "Prod", "x" * 21, ""])
def test_stages_the_emulator_and_the_tests_use_are_refused(stage, capsys):
    with pytest.raises(SystemExit) as exited:
        deploy.main(["deploy", "--stage", stage])
    assert exited.value.code == 2
    assert "stage must match" in capsys.readouterr().err


def test_a_region_is_required(aws_env, monkeypatch, capsys):
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with pytest.raises(SystemExit):
        deploy.main(["deploy", "--stage", "dev"])
    assert "no AWS region" in capsys.readouterr().err


def test_options_from_the_environment():
    options = deploy.options_from_environment(
        "dev", {"FRONTEND_ORIGIN": ORIGIN, "API_THROTTLE_RATE": "20", "RATE_LIMIT_BURST": "9", "HOME": "/root"}
    )
    assert options == deploy.Options(stage="dev", frontend_origin=ORIGIN, throttle_rate=20.0, throttle_burst=200,
                                     log_retention_days=30, settings={"RATE_LIMIT_BURST": "9"})
    with pytest.raises(SystemExit, match="API_THROTTLE_BURST"):
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
    assert config.iam_policy_file == "policy-ci.json"
    assert "s3cret" not in config_path.read_text()


def test_chalice_packages_the_app_for_terraform_within_8_mib(project_copy, aws_env, isolated_process, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))  # Chalice puts the project directory on it
    config_path = project_copy / ".chalice" / "config.json"
    deploy.write_stage_config(config_path, "ci", stack.app_environment(FAKE_OUTPUTS))
    project = deploy.ChaliceProject(project_copy)
    config = project.config("ci", {"CURSOR_SECRETS": "s3cret"})
    # Import the project's own app.py, with the stage's variables as Chalice sets them: Chalice then
    # reuses that module rather than the copy's (same source; coverage measures this one).
    os.environ.update(config.environment_variables)
    importlib.import_module("app")
    functions = policy.function_names(config.chalice_app, "ci")
    assert Path(sys.modules["app"].__file__).parent == ROOT
    document = policy.document(FAKE_OUTPUTS, functions)
    policy.write(project_copy / ".chalice" / "policy-ci.json", document)

    out = project_copy / "build"
    project.package(config, "ci", out)

    package = out / "deployment.zip"
    assert package.stat().st_size <= 8 * MIB, f"{package.stat().st_size / MIB:.1f} MiB"
    with zipfile.ZipFile(package) as archive:
        top_level = {name.split("/")[0] for name in archive.namelist()}
    assert {"app.py", "chalicelib", "pydantic", "aws_lambda_powertools"} <= top_level
    assert not top_level & {"boto3", "botocore", "s3transfer", "moto"}, "the Lambda runtime provides boto3"
    requirements = (ROOT / "requirements.txt").read_text().lower()
    assert "boto3" not in requirements.replace("boto3/botocore are provided", "")

    terraform = json.loads((out / "chalice.tf.json").read_text())["resource"]
    packaged = {f["function_name"] for f in terraform["aws_lambda_function"].values()}
    assert packaged == set(functions), "infra/policy.py names the functions as Chalice does"
    role_policies = [json.loads(p["policy"]) for p in terraform["aws_iam_role_policy"].values()]
    assert role_policies and all(p == document for p in role_policies)
    variables = terraform["aws_lambda_function"]["api_handler"]["environment"]["variables"]
    assert variables["CURSOR_SECRETS"] == "s3cret" and variables["TABLE_NAME"] == "items-ci"


def test_known_failures_end_the_command_with_their_reason(moto, monkeypatch, capsys):
    def failing(*args: Any, **kwargs: Any) -> str:
        raise stack.StackFailed("items-dev-resources: stack_update_complete failed: Table: limit exceeded")

    monkeypatch.setattr(deploy, "deploy", failing)
    assert deploy.main(["deploy", "--stage", "dev"]) == 1
    assert "failed: items-dev-resources: stack_update_complete failed: Table: limit exceeded" in capsys.readouterr().out


def test_chalices_deployer_and_deleter_run_with_the_secret_in_memory(tmp_path, moto, isolated_process, monkeypatch):
    """Chalice's real deployer against moto, for an app moto can hold (moto imports only OpenAPI 3
    REST APIs; Chalice writes Swagger 2): its function gets the stage's environment with the
    secret, its role the policy file, and the deleter removes both."""
    from chalice import Chalice

    monkeypatch.setattr(sys, "path", list(sys.path))
    project_dir = tmp_path / "project"
    (project_dir / ".chalice").mkdir(parents=True)
    (project_dir / "app.py").write_text(
        "from chalice import Chalice\n\napp = Chalice(app_name='items')\n\n\n"
        "@app.lambda_function()\ndef worker(event, context):\n    return {}\n"
    )
    # The same app, built here: Chalice finds it already imported as module "app" (so the test
    # session's measurement of the project's own app.py never sees this one).
    lambda_app = Chalice(app_name="items")
    lambda_app.lambda_function(name="worker")(lambda event, context: {})
    app_module = types.ModuleType("app")
    app_module.app = lambda_app  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "app", app_module)
    (project_dir / "requirements.txt").write_text("")
    config_path = project_dir / ".chalice" / "config.json"
    shutil.copy(ROOT / ".chalice" / "config.json", config_path)
    deploy.write_stage_config(config_path, "ci", {"STAGE": "ci", "TABLE_NAME": "items-ci"})
    project = deploy.ChaliceProject(project_dir)
    config = project.config("ci", {"CURSOR_SECRETS": "s3cret"})
    document = policy.document(FAKE_OUTPUTS, policy.function_names(config.chalice_app, "ci"))
    policy.write(project_dir / ".chalice" / "policy-ci.json", document)

    deployed = project.deploy(config, "ci")

    (function,) = deploy.deployed_resources(deployed, "lambda_function")
    settings = boto3.client("lambda").get_function(FunctionName=function["lambda_arn"])["Configuration"]
    assert settings["FunctionName"] == "items-ci-worker"
    assert settings["Environment"]["Variables"] == {**json.loads(config_path.read_text())["stages"]["ci"]["environment_variables"],
                                                   "LOG_LEVEL": "INFO", "POWERTOOLS_SERVICE_NAME": "items-service",
                                                   "CURSOR_SECRETS": "s3cret"}
    role = settings["Role"].rsplit("/", 1)[1]
    assert boto3.client("iam").get_role_policy(RoleName=role, PolicyName=role)["PolicyDocument"] == document
    assert "s3cret" not in config_path.read_text()
    assert "s3cret" not in (project_dir / ".chalice" / "deployed" / "ci.json").read_text()

    project.delete("ci")
    assert boto3.client("lambda").list_functions()["Functions"] == []
    assert boto3.client("iam").list_roles()["Roles"] == []


def test_the_policy_of_a_deployed_stage_can_be_printed(clients, isolated_process, monkeypatch, capsys):
    monkeypatch.setattr(sys, "path", list(sys.path))
    outputs = deploy.resources(clients.cloudformation, "ci", None)
    assert policy.main(["--stage", "ci"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == policy.document(outputs, policy.function_names(sys.modules["app"].app, "ci"))
    assert "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/items-ci-bearer_authorizer" in printed["Statement"][-1]["Resource"]


def test_the_deploy_guide_lists_every_policy_statement():
    guide = (ROOT / "docs" / "DEPLOY.md").read_text()
    for statement in policy.document(FAKE_OUTPUTS, ["items-ci"])["Statement"]:
        assert f"| `{statement['Sid']}` |" in guide, statement["Sid"]
        for action in statement["Action"]:
            assert action.split(":")[1] in guide, action
