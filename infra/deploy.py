"""Deploy a stage to AWS with one command, and remove it with another.

``make deploy STAGE=dev`` runs, in order (each step is a function below):

1. ``resources``: the stage's CloudFormation stack from infra/template.yaml, created or updated,
   and waited for.
2. ``cursor_secrets``: the SecureString parameter ``/items/<stage>/cursor-secrets``, created once
   with a random value. The functions read it at run time (``CURSOR_SECRETS_PARAMETER`` names
   it; ``chalicelib/secret_store.py``), so the secret is in no file and in no function's
   configuration.
3. ``write_stage_config``: the stage's environment variables, from the stack's outputs, into
   .chalice/config.json.
4. ``policy.write``: .chalice/policy-<stage>.json, from the outputs and the app's functions.
5. Chalice's own deployer (what ``chalice deploy --stage`` runs): role, functions, API, events.
6. What Chalice cannot express: ``ReportBatchItemFailures`` on each SQS event source mapping
   (aws/chalice#2029), CORS headers on API Gateway's own 4XX/5XX responses, stage-wide
   throttling, and a retention period for every function's log group.
7. The API's URL.

Running it again converges: steps with nothing to change change nothing.

``make destroy STAGE=dev`` runs Chalice's deleter (what ``chalice delete --stage`` runs) and keeps
the data: the resources stack, its table and buckets. ``PURGE=1`` deletes those too.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra import policy, stack

ROOT = Path(__file__).resolve().parent.parent
CONFIG_PATH = ROOT / ".chalice" / "config.json"
RESERVED_STAGES = frozenset({"local", "test"})  # the emulator's and the unit suite's
SECRET_VARIABLES = ("CURSOR_SECRETS",)
# Stage settings taken from the operator's environment when set (otherwise the stage keeps its
# previous value, or the application's default).
PASSTHROUGH_SETTINGS = (
    "RATE_LIMIT_RPS",
    "RATE_LIMIT_BURST",
    "UPLOAD_WINDOW_SECONDS",
    "MAX_ATTACHMENT_BYTES",
    "MAX_IMPORT_BYTES",
    "LOG_LEVEL",
)
GATEWAY_RESPONSE_TYPES = ("DEFAULT_4XX", "DEFAULT_5XX")
BATCH_ITEM_FAILURES = "ReportBatchItemFailures"


def log(message: str) -> None:
    print(f"[deploy] {message}", flush=True)


@dataclass
class Options:
    stage: str
    frontend_origin: str | None = None
    throttle_rate: float = 100.0
    throttle_burst: int = 200
    log_retention_days: int = 30
    settings: dict[str, str] = field(default_factory=dict)


@dataclass
class Clients:
    cloudformation: Any
    ssm: Any
    lambda_: Any
    apigateway: Any
    logs: Any
    s3: Any
    dynamodb: Any

    @classmethod
    def create(cls, session: Any) -> Clients:
        return cls(
            cloudformation=session.client("cloudformation"),
            ssm=session.client("ssm"),
            lambda_=session.client("lambda"),
            apigateway=session.client("apigateway"),
            logs=session.client("logs"),
            s3=session.client("s3"),
            dynamodb=session.client("dynamodb"),
        )


# -- 1. resources -----------------------------------------------------------------------------

def resources(cloudformation: Any, stage: str, frontend_origin: str | None) -> dict[str, str]:
    """Create or update the stack; an unset front-end origin keeps the stage's previous one."""
    if frontend_origin is None:
        try:
            frontend_origin = stack.outputs(cloudformation, stage).get("FrontendOrigin")
        except LookupError:
            frontend_origin = None
    return stack.deploy(cloudformation, stage, {"FrontendOrigin": frontend_origin or "*"})


# -- 2. secrets -------------------------------------------------------------------------------

def secret_parameter(stage: str) -> str:
    return policy.cursor_secrets_parameter(stage)


def cursor_secrets(ssm: Any, stage: str) -> str:
    """The stage's cursor-signing secrets, created on first use.

    Rotate by writing ``old,new``, then ``new,old`` five minutes later, to the parameter (no
    deploy needed): the first secret signs, all verify, so cursors issued before the rotation keep
    working until the old one is dropped (``chalicelib/secret_store.py``).
    """
    name = secret_parameter(stage)
    try:
        return str(ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"])
    except ssm.exceptions.ParameterNotFound:
        pass
    value = secrets.token_urlsafe(32)
    try:
        ssm.put_parameter(
            Name=name,
            Value=value,
            Type="SecureString",
            Description=f"items {stage}: HMAC secrets for pagination cursors (first signs, all verify)",
        )
    except ssm.exceptions.ParameterAlreadyExists:
        # Another deploy of this stage created it first: use theirs.
        return str(ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"])
    log(f"created the SecureString parameter {name}")
    return value


# -- 3. stage configuration -------------------------------------------------------------------

def stage_environment(outputs: dict[str, str], settings: Mapping[str, str]) -> dict[str, str]:
    parameter = {"CURSOR_SECRETS_PARAMETER": secret_parameter(outputs["Stage"])}
    return {**stack.app_environment(outputs), **parameter, **settings}


def write_stage_config(path: Path, stage: str, environment: Mapping[str, str]) -> bool:
    """Merge the stage's variables into Chalice's config; False when nothing changed.

    Variables set by hand for the stage stay unless the deploy sets them; secrets never land here.
    """
    original = path.read_text()
    config = json.loads(original)
    stage_config = config.setdefault("stages", {}).setdefault(stage, {"api_gateway_stage": "api"})
    stage_config.setdefault("iam_policy_file", policy.policy_path(stage).name)
    variables = stage_config.setdefault("environment_variables", {})
    variables.update(environment)
    for name in SECRET_VARIABLES:
        variables.pop(name, None)
    text = json.dumps(config, indent=2) + "\n"
    if text == original:
        return False
    path.write_text(text)
    return True


# -- 5. Chalice -------------------------------------------------------------------------------

class ChaliceProject:
    """Chalice's deployer and deleter, run in this process: what ``chalice deploy``/``delete`` run.

    In process, so the stage's secrets reach the functions' environment through Chalice's
    highest-precedence settings instead of a file on disk.
    """

    def __init__(self, project_dir: Path = ROOT) -> None:
        from chalice.cli.factory import CLIFactory

        self.factory = CLIFactory(project_dir=str(project_dir))

    def config(self, stage: str, secret_environment: Mapping[str, str] | None = None) -> Any:
        params = {"environment_variables": dict(secret_environment)} if secret_environment else {}
        return self.factory.create_config_obj(chalice_stage_name=stage, user_provided_params=params)

    def deploy(self, config: Any, stage: str) -> dict[str, Any]:
        from chalice.utils import UI

        session = self.factory.create_botocore_session()
        deployer = self.factory.create_default_deployer(session=session, config=config, ui=UI())
        deployed: dict[str, Any] = deployer.deploy(config, chalice_stage_name=stage)
        return deployed

    def package(self, config: Any, stage: str, out_dir: Path, pkg_format: str = "terraform") -> None:
        """What ``chalice package --pkg-format <format>`` builds: the deployment zip and the template."""
        packager = self.factory.create_app_packager(config, self.factory.create_package_options(), pkg_format, "json", None)
        packager.package_app(config, str(out_dir), stage)

    def delete(self, stage: str) -> None:
        from chalice.utils import UI

        config = self.config(stage)
        deleter = self.factory.create_deletion_deployer(session=self.factory.create_botocore_session(), ui=UI())
        deleter.deploy(config, chalice_stage_name=stage)


def deployed_resources(deployed: Mapping[str, Any], resource_type: str) -> list[dict[str, Any]]:
    return [r for r in deployed.get("resources", []) if r.get("resource_type") == resource_type]


def api_url(deployed: Mapping[str, Any]) -> str:
    apis = deployed_resources(deployed, "rest_api")
    return str(apis[0]["rest_api_url"]) if apis else ""


def cors_headers(app: Any) -> dict[str, str]:
    """The CORS headers the app's routes answer with, for API Gateway's own responses too."""
    for methods in app.routes.values():
        for route in methods.values():
            if route.cors:
                headers: dict[str, str] = route.cors.get_access_control_headers()
                headers.pop("Access-Control-Max-Age", None)  # only meaningful on a preflight answer
                return headers
    return {}


# -- 6. what Chalice cannot express -----------------------------------------------------------

def enable_batch_item_failures(
    lambda_client: Any, deployed: Mapping[str, Any], sleep: Callable[[float], None] = time.sleep
) -> list[str]:
    """Let the SQS consumer report partial batch failures; returns the mappings changed."""
    changed = []
    for source in deployed_resources(deployed, "sqs_event"):
        uuid = source["event_uuid"]
        mapping = lambda_client.get_event_source_mapping(UUID=uuid)
        if BATCH_ITEM_FAILURES in mapping.get("FunctionResponseTypes", []):
            continue
        _retry_while_in_use(
            functools.partial(
                lambda_client.update_event_source_mapping, UUID=uuid, FunctionResponseTypes=[BATCH_ITEM_FAILURES]
            ),
            lambda_client.exceptions.ResourceInUseException,
            sleep,
        )
        changed.append(uuid)
    return changed


def _retry_while_in_use(call: Callable[[], Any], busy: type[Exception], sleep: Callable[[float], None]) -> None:
    """A mapping Chalice just updated is briefly "Updating"; wait for it, boundedly."""
    for attempt in range(10):
        try:
            call()
            return
        except busy:
            if attempt == 9:
                raise
            sleep(3)


def gateway_response_parameters(headers: Mapping[str, str]) -> dict[str, str]:
    return {f"gatewayresponse.header.{name}": f"'{value}'" for name, value in sorted(headers.items())}


def ensure_gateway_responses(apigateway: Any, rest_api_id: str, api_stage: str, headers: Mapping[str, str]) -> bool:
    """API Gateway's own 4XX/5XX answers (authorizer denials, unknown routes, throttling) carry
    the same CORS headers as the app's, so a browser can read them.

    Checked on every deploy, since Chalice re-imports the whole API definition (``overwrite``),
    which does not carry them; the stage is redeployed when a response changed."""
    wanted = gateway_response_parameters(headers)
    changed = False
    for response_type in GATEWAY_RESPONSE_TYPES:
        current = apigateway.get_gateway_response(restApiId=rest_api_id, responseType=response_type)
        if all(current.get("responseParameters", {}).get(k) == v for k, v in wanted.items()):
            continue
        apigateway.put_gateway_response(
            restApiId=rest_api_id,
            responseType=response_type,
            responseParameters=wanted,
            responseTemplates=current.get("responseTemplates") or {"application/json": '{"message":$context.error.messageString}'},
        )
        changed = True
    if changed:
        apigateway.create_deployment(
            restApiId=rest_api_id, stageName=api_stage, description="gateway responses with CORS headers"
        )
    return changed


def ensure_throttling(apigateway: Any, rest_api_id: str, api_stage: str, rate: float, burst: int) -> bool:
    """Stage-wide request rate and burst limits: a ceiling on cost and on load, for every key."""
    settings = apigateway.get_stage(restApiId=rest_api_id, stageName=api_stage).get("methodSettings", {}).get("*/*", {})
    if settings.get("throttlingRateLimit") == rate and settings.get("throttlingBurstLimit") == burst:
        return False
    apigateway.update_stage(
        restApiId=rest_api_id,
        stageName=api_stage,
        patchOperations=[
            {"op": "replace", "path": "/*/*/throttling/rateLimit", "value": str(rate)},
            {"op": "replace", "path": "/*/*/throttling/burstLimit", "value": str(burst)},
        ],
    )
    return True


def ensure_log_retention(logs: Any, function_names: Iterable[str], days: int) -> list[str]:
    """Every function's log group exists with a retention period (Lambda's default keeps logs,
    and bills for them, forever); returns the groups changed."""
    changed = []
    for name in function_names:
        group = f"/aws/lambda/{name}"
        found = [g for g in logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"] if g["logGroupName"] == group]
        if found and found[0].get("retentionInDays") == days:
            continue
        if not found:
            with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):  # it logged meanwhile
                logs.create_log_group(logGroupName=group)
        logs.put_retention_policy(logGroupName=group, retentionInDays=days)
        changed.append(group)
    return changed


# -- the commands -----------------------------------------------------------------------------

@dataclass
class Configured:
    outputs: dict[str, str]
    config: Any  # chalice.config.Config, with the stage's secrets in memory
    functions: list[str]


def configure(options: Options, clients: Clients, project: ChaliceProject, config_path: Path = CONFIG_PATH) -> Configured:
    """Steps 1-4: resources, secrets, the stage's environment and its policy."""
    stage = options.stage
    log(f"resources stack {stack.stack_name(stage)}")
    outputs = resources(clients.cloudformation, stage, options.frontend_origin)
    cursor_secrets(clients.ssm, stage)  # the functions read it themselves
    if write_stage_config(config_path, stage, stage_environment(outputs, options.settings)):
        log(f"stage {stage!r} environment written to {config_path.name}")
    config = project.config(stage)
    functions = policy.function_names(config.chalice_app, stage)
    policy_file = config_path.parent / policy.policy_path(stage).name
    if policy.write(policy_file, policy.document(outputs, functions)):
        log(f"least-privilege policy written to {policy_file.name}")
    return Configured(outputs, config, functions)


def deploy(options: Options, clients: Clients, project: ChaliceProject, config_path: Path = CONFIG_PATH) -> str:
    """Deploy or update the stage; returns the API's URL."""
    stage = options.stage
    configured = configure(options, clients, project, config_path)
    config = configured.config

    log("chalice deploy")
    deployed = project.deploy(config, stage)

    for uuid in enable_batch_item_failures(clients.lambda_, deployed):
        log(f"event source mapping {uuid}: {BATCH_ITEM_FAILURES} on")
    for api in deployed_resources(deployed, "rest_api"):
        rest_api_id, api_stage = api["rest_api_id"], config.api_gateway_stage
        if ensure_gateway_responses(clients.apigateway, rest_api_id, api_stage, cors_headers(config.chalice_app)):
            log("gateway responses: CORS headers on DEFAULT_4XX and DEFAULT_5XX")
        if ensure_throttling(clients.apigateway, rest_api_id, api_stage, options.throttle_rate, options.throttle_burst):
            log(f"stage throttling: {options.throttle_rate:g} requests/s, burst {options.throttle_burst}")
    for group in ensure_log_retention(clients.logs, configured.functions, options.log_retention_days):
        log(f"log group {group}: retention {options.log_retention_days} days")

    url = api_url(deployed)
    log(f"API URL: {url}")
    return url


def package(options: Options, clients: Clients, project: ChaliceProject, out_dir: Path,
            config_path: Path = CONFIG_PATH) -> None:
    """Steps 1-4, then Chalice's Terraform packaging instead of its deployer (docs/DEPLOY.md)."""
    configured = configure(options, clients, project, config_path)
    project.package(configured.config, options.stage, out_dir)
    log(f"Terraform configuration and deployment package in {out_dir}")


def destroy(stage: str, purge: bool, clients: Clients, project: ChaliceProject) -> None:
    """Remove the app; with ``purge`` also every resource and all data of the stage."""
    log(f"chalice delete --stage {stage}")
    project.delete(stage)
    try:
        outputs = stack.outputs(clients.cloudformation, stage)
    except LookupError:
        outputs = {}
    if not purge:
        if outputs:
            log(f"kept the data: stack {stack.stack_name(stage)} ({outputs['TableName']}, {outputs['BucketName']}, "
                "queues); PURGE=1 deletes it")
        return
    if outputs:
        empty_bucket(clients.s3, outputs["FrontendBucketName"])
        log(f"deleting stack {stack.stack_name(stage)}")
        stack.delete(clients.cloudformation, stage)
        # Retained by the template (DeletionPolicy: Retain), so deleted here, explicitly.
        delete_table(clients.dynamodb, outputs["TableName"])
        empty_bucket(clients.s3, outputs["BucketName"])
        _ignore_missing(lambda: clients.s3.delete_bucket(Bucket=outputs["BucketName"]), "NoSuchBucket")
    _ignore_missing(lambda: clients.ssm.delete_parameter(Name=secret_parameter(stage)), "ParameterNotFound")
    log(f"stage {stage!r} purged")


def delete_table(dynamodb: Any, table: str) -> None:
    try:
        dynamodb.update_table(TableName=table, DeletionProtectionEnabled=False)
        dynamodb.delete_table(TableName=table)
    except dynamodb.exceptions.ResourceNotFoundException:
        return
    dynamodb.get_waiter("table_not_exists").wait(TableName=table, WaiterConfig={"Delay": 2, "MaxAttempts": 150})


def empty_bucket(s3: Any, bucket: str) -> int:
    """Delete every object version and delete marker (the buckets are versioned)."""
    deleted = 0
    try:
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            objects = [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
            ]
            if objects:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
                deleted += len(objects)
    except s3.exceptions.NoSuchBucket:
        return 0
    return deleted


def _ignore_missing(call: Callable[[], Any], code: str) -> None:
    from botocore.exceptions import ClientError

    try:
        call()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != code:
            raise


def options_from_environment(stage: str, environ: Mapping[str, str]) -> Options:
    def number(name: str, default: str) -> str:
        value = environ.get(name, "") or default
        try:
            float(value)
        except ValueError:
            raise SystemExit(f"{name} must be a number, got {value!r}") from None
        return value

    return Options(
        stage=stage,
        frontend_origin=environ.get("FRONTEND_ORIGIN") or None,
        throttle_rate=float(number("API_THROTTLE_RATE", "100")),
        throttle_burst=int(float(number("API_THROTTLE_BURST", "200"))),
        log_retention_days=int(float(number("LOG_RETENTION_DAYS", "30"))),
        settings={name: environ[name] for name in PASSTHROUGH_SETTINGS if environ.get(name)},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.deploy", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("deploy", "destroy", "package"))
    parser.add_argument("--stage", required=True, help="stage name, e.g. dev or prod")
    parser.add_argument("--purge", action="store_true", help="destroy: delete the data too")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "terraform", help="package: output directory")
    args = parser.parse_args(argv)
    stage = args.stage
    if not stack.STAGE_PATTERN.match(stage) or stage in RESERVED_STAGES:
        parser.error(f"stage must match {stack.STAGE_PATTERN.pattern} and not be one of {sorted(RESERVED_STAGES)}")

    import boto3

    session = boto3.session.Session()
    if not session.region_name:
        parser.error("no AWS region configured: set AWS_REGION (or AWS_DEFAULT_REGION, or a profile's region)")
    from chalicelib.settings import ConfigurationError

    clients = Clients.create(session)
    log(f"stage {stage!r} in {session.region_name}")
    try:
        if args.command == "deploy":
            deploy(options_from_environment(stage, os.environ), clients, ChaliceProject())
        elif args.command == "package":
            package(options_from_environment(stage, os.environ), clients, ChaliceProject(), args.out)
        else:
            destroy(stage, args.purge, clients, ChaliceProject())
    except (stack.StackFailed, ConfigurationError) as exc:
        log(f"failed: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
