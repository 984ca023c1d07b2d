"""Deploy a stage to AWS with one command, and remove it with another.

``make deploy STAGE=dev`` runs, in order (each step is a function below):

1. ``resources``: the stage's CloudFormation stack from infra/template.yaml, created or updated,
   and waited for.
2. ``cursor_secrets``: the SecureString parameter ``/items/<stage>/cursor-secrets``, created once
   with a random value. The functions read it at run time (``CURSOR_SECRETS_PARAMETER`` names
   it; ``chalicelib/config/secret_store.py``), so the secret is in no file and in no function's
   configuration.
3. ``write_stage_config``: the stage's environment variables, from the stack's outputs, into
   .chalice/config.json.
4. ``policy.write_all``: .chalice/policy-<stage>-<function>.json, one per function, from the
   outputs and the app's functions, each named in the stage's ``lambda_functions``.
5. Chalice's own deployer (what ``chalice deploy --stage`` runs): role, functions, API, events.
   The deployment package it uploads carries its bytecode, compiled ahead (infra/bytecode.py).
6. What Chalice cannot express: ``ReportBatchItemFailures`` on each SQS event source mapping
   (aws/chalice#2029), API Gateway's own answers as problem documents (infra/gateway_responses.py),
   stage-wide throttling, a retention period for every function's log group, and the events
   dead-letter queue as the storage-event functions' on-failure destination.
7. The API's URL.
8. ``publish``: frontend/ and its config.js in the front-end bucket, behind the stage's CloudFront
   distribution; the front end's URL.

Running it again converges: steps with nothing to change change nothing. Bad input (stage,
origin, region, credentials, a stack that cannot be updated) ends the command with one line
before anything is changed (``Refused``, ``stack.StackBlocked``).

``make destroy STAGE=dev`` runs Chalice's deleter (what ``chalice delete --stage`` runs) and keeps
the data: the resources stack, its table and buckets, the front end. ``PURGE=1`` deletes those
too, and the functions' log groups.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import os
import re
import secrets
import sys
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra import bytecode, gateway_responses, policy, stack

ROOT = Path(__file__).resolve().parent.parent
CONFIG_PATH = ROOT / ".chalice" / "config.json"
RESERVED_STAGES = frozenset({"local", "test"})  # the emulator's and the unit suite's
# The functions' runtime (docs/DEPLOY.md). Chalice names the runtime after the interpreter that
# deploys, and the package's bytecode only loads on the interpreter version that compiled it.
RUNTIME = "python3.11"
SECRET_VARIABLES = ("CURSOR_SECRETS",)
# Stage settings taken from the operator's environment when set (otherwise the stage keeps its
# previous value, or the application's default).
PASSTHROUGH_SETTINGS = (
    "RATE_LIMIT_RPS",
    "RATE_LIMIT_BURST",
    "UPLOAD_WINDOW_SECONDS",
    "MAX_ATTACHMENT_BYTES",
    "MAX_IMPORT_BYTES",
    "IMPORT_DEADLINE_SECONDS",
    "LOG_LEVEL",
)
BATCH_ITEM_FAILURES = "ReportBatchItemFailures"


def log(message: str) -> None:
    print(f"[deploy] {message}", flush=True)


@dataclass
class Options:
    stage: str
    frontend_origin: str | None = None
    alarm_email: str | None = None
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
    cloudfront: Any = None

    @classmethod
    def create(cls, session: Any) -> Clients:
        return cls(
            cloudfront=session.client("cloudfront"),
            cloudformation=session.client("cloudformation"),
            ssm=session.client("ssm"),
            lambda_=session.client("lambda"),
            apigateway=session.client("apigateway"),
            logs=session.client("logs"),
            s3=session.client("s3"),
            dynamodb=session.client("dynamodb"),
        )


# -- 1. resources -----------------------------------------------------------------------------

def resources(cloudformation: Any, stage: str, frontend_origin: str | None, alarm_email: str | None = None) -> dict[str, str]:
    """Create or update the stack; an unset front-end origin or alarm e-mail keeps the stage's previous one."""
    previous: dict[str, str] = {}
    if frontend_origin is None or alarm_email is None:
        try:
            previous = stack.outputs(cloudformation, stage)
        except LookupError:
            previous = {}
    parameters = {
        "FrontendOrigin": (frontend_origin if frontend_origin is not None else previous.get("FrontendOrigin")) or "*",
        "AlarmEmail": (alarm_email if alarm_email is not None else previous.get("AlarmEmail")) or "",
    }
    return stack.deploy(cloudformation, stage, parameters, notify=log)


# -- 2. secrets -------------------------------------------------------------------------------

def secret_parameter(stage: str) -> str:
    return policy.cursor_secrets_parameter(stage)


def cursor_secrets(ssm: Any, stage: str) -> str:
    """The stage's cursor-signing secrets, created on first use.

    Rotate by writing ``old,new``, then ``new,old`` five minutes later, to the parameter (no
    deploy needed): the first secret signs, all verify, so cursors issued before the rotation keep
    working until the old one is dropped (``chalicelib/config/secret_store.py``).
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


def write_stage_config(path: Path, stage: str, environment: Mapping[str, str], functions: Iterable[str] = ()) -> bool:
    """Merge the stage's variables, and each function's policy file, into Chalice's config;
    False when nothing changed.

    Variables set by hand for the stage stay unless the deploy sets them; secrets never land here.
    """
    original = path.read_text()
    config = json.loads(original)
    stage_config = config.setdefault("stages", {}).setdefault(stage, {"api_gateway_stage": "api"})
    per_function = stage_config.setdefault("lambda_functions", {})
    for handler in functions:
        per_function.setdefault(handler, {})["iam_policy_file"] = policy.policy_file_name(stage, handler)
    if not per_function:
        del stage_config["lambda_functions"]
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

        # environ=os.environ: Chalice writes the stage's variables into the environment it imports
        # app.py with. Without it, Chalice uses a copy, and what app.py reads at import (the bucket
        # and queue its event sources name, the CORS origin) falls back to defaults.
        self.factory = CLIFactory(project_dir=str(project_dir), environ=os.environ)

    def config(self, stage: str, secret_environment: Mapping[str, str] | None = None) -> Any:
        params = {"environment_variables": dict(secret_environment)} if secret_environment else {}
        return self.factory.create_config_obj(chalice_stage_name=stage, user_provided_params=params)

    def deploy(self, config: Any, stage: str) -> dict[str, Any]:
        """Chalice's deployer, uploading the deployment package with its bytecode compiled ahead.

        The package is built first and compiled in place, in Chalice's cache of packages
        (.chalice/deployments, named after a hash of what goes in); the deployer then finds it there
        and uploads it as it is.
        """
        from chalice.utils import UI

        built = self.build_package(config)
        session = self.factory.create_botocore_session()
        deployer = self.factory.create_default_deployer(session=session, config=config, ui=UI())
        deployed: dict[str, Any] = deployer.deploy(config, chalice_stage_name=stage)
        if self._packager(config).deployment_package_filename(config.project_dir, config.lambda_python_version) != str(built):
            raise bytecode.BytecodeError(f"the project changed while Chalice deployed it: the functions run a package "
                                         f"other than {built.name}, maybe without bytecode; deploy again")
        return deployed

    def package(self, config: Any, stage: str, out_dir: Path, pkg_format: str = "terraform") -> None:
        """What ``chalice package --pkg-format <format>`` builds, the deployment zip with its bytecode compiled."""
        bytecode.check_interpreter(config.lambda_python_version)
        packager = self.factory.create_app_packager(config, self.factory.create_package_options(), pkg_format, "json", None)
        packager.package_app(config, str(out_dir), stage)
        bytecode.compile_package(out_dir / "deployment.zip", config.lambda_python_version)

    def build_package(self, config: Any) -> Path:
        """Chalice's deployment package for ``config`` (built, or found in its cache), bytecode compiled in."""
        if config.automatic_layer:
            raise Refused('"automatic_layer" splits the package in two; infra/bytecode.py compiles one zip')
        bytecode.check_interpreter(config.lambda_python_version)
        built = Path(self._packager(config).create_deployment_package(config.project_dir, config.lambda_python_version))
        bytecode.compile_package(built, config.lambda_python_version)
        return built

    @staticmethod
    def _packager(config: Any) -> Any:
        """The packager Chalice's build stage uses (``chalice.deploy.deployer.create_build_stage``)."""
        from chalice.deploy.packager import DependencyBuilder, LambdaDeploymentPackager, PipRunner, SubprocessPip
        from chalice.utils import UI, OSUtils

        osutils = OSUtils()
        builder = DependencyBuilder(osutils=osutils, pip_runner=PipRunner(pip=SubprocessPip(osutils=osutils), osutils=osutils),
                                    architecture=config.lambda_architecture)
        return LambdaDeploymentPackager(osutils=osutils, dependency_builder=builder, ui=UI(),
                                        architecture=config.lambda_architecture)

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


EVENT_RETRIES = 2  # Lambda's default for asynchronous invocations, said explicitly


def ensure_event_failure_destination(lambda_client: Any, deployed: Mapping[str, Any], dead_letter_arn: str) -> list[str]:
    """Storage events a function failed on every attempt go to the events dead-letter queue, never
    nowhere (docs/OPERATIONS.md); returns the functions changed."""
    wanted = {"OnFailure": {"Destination": dead_letter_arn}}
    changed = []
    for function in sorted({source["lambda_arn"] for source in deployed_resources(deployed, "s3_event")}):
        try:
            current = lambda_client.get_function_event_invoke_config(FunctionName=function)
        except lambda_client.exceptions.ResourceNotFoundException:
            current = {}
        if current.get("DestinationConfig", {}).get("OnFailure") == wanted["OnFailure"] and \
                current.get("MaximumRetryAttempts") == EVENT_RETRIES:
            continue
        lambda_client.put_function_event_invoke_config(
            FunctionName=function, MaximumRetryAttempts=EVENT_RETRIES, DestinationConfig=wanted
        )
        changed.append(function)
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


def ensure_gateway_responses(apigateway: Any, rest_api_id: str, api_stage: str, origin: str) -> list[str]:
    """API Gateway's own answers are the contract's problem documents (infra/gateway_responses.py),
    readable by the stage's front end; returns the response types changed.

    Checked on every deploy, since Chalice re-imports the whole API definition (``overwrite``),
    which does not carry them; the stage is redeployed when one changed."""
    changed = []
    for wanted in gateway_responses.put_parameters(origin):
        try:
            current = apigateway.get_gateway_response(restApiId=rest_api_id, responseType=wanted["responseType"])
        except apigateway.exceptions.NotFoundException:
            current = {}
        if gateway_responses.parameters_match(current, wanted):
            continue
        apigateway.put_gateway_response(restApiId=rest_api_id, **wanted)
        changed.append(wanted["responseType"])
    if changed:
        apigateway.create_deployment(restApiId=rest_api_id, stageName=api_stage, description="gateway responses")
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
    outputs = resources(clients.cloudformation, stage, options.frontend_origin, options.alarm_email)
    cursor_secrets(clients.ssm, stage)  # the functions read it themselves
    environment = stage_environment(outputs, options.settings)
    if write_stage_config(config_path, stage, environment):
        log(f"stage {stage!r} environment written to {config_path.name}")
    app = project.config(stage).chalice_app
    policies = policy.documents(outputs, app, stage)
    for name in policy.write_all(config_path.parent, stage, policies):
        log(f"least-privilege policy written to {name}")
    if write_stage_config(config_path, stage, environment, policies):
        log(f"stage {stage!r}: one role and policy per function in {config_path.name}")
    config = project.config(stage)  # now with each function's policy file
    return Configured(outputs, config, policy.function_names(app, stage))


def deploy(options: Options, clients: Clients, project: ChaliceProject, config_path: Path = CONFIG_PATH) -> str:
    """Deploy or update the stage; returns the API's URL."""
    stage = options.stage
    configured = configure(options, clients, project, config_path)
    config = configured.config

    log("chalice deploy")
    deployed = project.deploy(config, stage)

    for uuid in enable_batch_item_failures(clients.lambda_, deployed):
        log(f"event source mapping {uuid}: {BATCH_ITEM_FAILURES} on")
    for function in ensure_event_failure_destination(clients.lambda_, deployed, configured.outputs["EventDeadLetterQueueArn"]):
        log(f"{function}: failed storage events go to the events dead-letter queue")
    for api in deployed_resources(deployed, "rest_api"):
        rest_api_id, api_stage = api["rest_api_id"], config.api_gateway_stage
        origin = config.environment_variables.get("CORS_ALLOW_ORIGIN") or "*"
        if ensure_gateway_responses(clients.apigateway, rest_api_id, api_stage, origin):
            log(f"gateway responses: problem documents with CORS origin {origin}")
        if ensure_throttling(clients.apigateway, rest_api_id, api_stage, options.throttle_rate, options.throttle_burst):
            log(f"stage throttling: {options.throttle_rate:g} requests/s, burst {options.throttle_burst}")
    for group in ensure_log_retention(clients.logs, configured.functions, options.log_retention_days):
        log(f"log group {group}: retention {options.log_retention_days} days")

    url = api_url(deployed)
    log(f"API URL: {url}")
    if clients.cloudfront is not None:
        region = configured.outputs["TableArn"].split(":")[3]
        origin = config.environment_variables.get("CORS_ALLOW_ORIGIN") or "*"
        publish(clients, stage, configured.outputs["FrontendBucketName"], region, url, origin,
                configured.outputs.get("UserPoolClientId", ""))
    return url


# -- 8. the front end -------------------------------------------------------------------------
# CloudFront with origin access control in front of the private front-end bucket: HTTPS for a
# page that holds an API key, a bucket that stays private (S3 website endpoints serve plain HTTP
# only, from a public bucket). docs/DEPLOY.md says more.

FRONTEND_DIR = ROOT / "frontend"
CACHING_OPTIMIZED_POLICY = "658327ea-f89d-4fab-a63d-7e88639e58f6"  # AWS managed cache policy
SECURITY_HEADERS_POLICY = "67f7725c-6f97-4210-82d7-5512b31e9d03"  # AWS managed response headers policy
NOT_CACHED = ("index.html", "config.js")  # read on every visit: a deploy shows at once
SWAGGER_UI_BUNDLE = "docs/swagger-ui/swagger-ui-bundle.js"  # /docs/ runs on it (make docs-ui)


def frontend_files(api_url: str, directory: Path = FRONTEND_DIR, user_pool: dict[str, str] | None = None) -> dict[str, bytes]:
    """``frontend/`` as published: its files, plus ``config.js`` naming the stage's API and user
    pool, no key (people sign in; operators may enter a key in the settings panel)."""
    from local.frontend import config_script

    if (directory / "docs" / "index.html").is_file() and not (directory / SWAGGER_UI_BUNDLE).is_file():
        raise Refused(f"{directory / SWAGGER_UI_BUNDLE} is missing: make docs-ui copies it from the pinned swagger-ui-dist")
    files = {
        path.relative_to(directory).as_posix(): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file() and "node_modules" not in path.parts
    }
    files["config.js"] = config_script(api_url, "", user_pool)
    return files


def publish_files(s3: Any, bucket: str, files: Mapping[str, bytes]) -> list[str]:
    """Make the bucket hold exactly ``files``; returns the keys written or deleted."""
    import mimetypes

    current = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        current.update({o["Key"]: o["ETag"].strip('"') for o in page.get("Contents", [])})
    changed = []
    for key, body in files.items():
        if current.get(key) == hashlib.md5(body, usedforsecurity=False).hexdigest():
            continue
        content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type in ("application/javascript", "application/json"):
            content_type += "; charset=utf-8"
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type,
                      CacheControl="no-cache" if key in NOT_CACHED else "public, max-age=300")
        changed.append(key)
    stale = sorted(set(current) - set(files))
    for key in stale:
        s3.delete_object(Bucket=bucket, Key=key)
    return changed + stale


def distribution_comment(stage: str) -> str:
    return f"items {stage} front end"


def find_distribution(cloudfront: Any, stage: str) -> dict[str, Any] | None:
    for page in cloudfront.get_paginator("list_distributions").paginate():
        for summary in page.get("DistributionList", {}).get("Items", []):
            if summary.get("Comment") == distribution_comment(stage):
                return dict(summary)
    return None


def ensure_distribution(cloudfront: Any, stage: str, bucket: str, region: str) -> tuple[str, str, bool]:
    """The stage's CloudFront distribution in front of its front-end bucket (with origin access
    control, HTTPS only); returns its id, domain name and whether it was created now."""
    found = find_distribution(cloudfront, stage)
    if found is not None:
        return str(found["Id"]), str(found["DomainName"]), False
    name = f"items-{stage}-web"
    controls = cloudfront.list_origin_access_controls().get("OriginAccessControlList", {}).get("Items", [])
    control = next((c["Id"] for c in controls if c["Name"] == name), None)
    if control is None:
        control = cloudfront.create_origin_access_control(OriginAccessControlConfig={
            "Name": name, "Description": f"items {stage}: CloudFront reads the front-end bucket",
            "SigningProtocol": "sigv4", "SigningBehavior": "always", "OriginAccessControlOriginType": "s3",
        })["OriginAccessControl"]["Id"]
    created = cloudfront.create_distribution(DistributionConfig={
        "CallerReference": f"{name}-{secrets.token_hex(4)}",
        "Comment": distribution_comment(stage),
        "Enabled": True,
        "DefaultRootObject": "index.html",
        "PriceClass": "PriceClass_100",
        "HttpVersion": "http2and3",
        "Origins": {"Quantity": 1, "Items": [{
            "Id": "frontend-bucket",
            "DomainName": f"{bucket}.s3.{region}.amazonaws.com",
            "S3OriginConfig": {"OriginAccessIdentity": ""},
            "OriginAccessControlId": control,
        }]},
        "DefaultCacheBehavior": {
            "TargetOriginId": "frontend-bucket",
            "ViewerProtocolPolicy": "redirect-to-https",
            "AllowedMethods": {"Quantity": 2, "Items": ["GET", "HEAD"],
                               "CachedMethods": {"Quantity": 2, "Items": ["GET", "HEAD"]}},
            "Compress": True,
            "CachePolicyId": CACHING_OPTIMIZED_POLICY,
            "ResponseHeadersPolicyId": SECURITY_HEADERS_POLICY,
        },
    })["Distribution"]
    return str(created["Id"]), str(created["DomainName"]), True


def publish(clients: Clients, stage: str, bucket: str, region: str, api: str, origin: str, user_pool_client: str = "") -> str:
    """Publish ``frontend/`` behind the stage's distribution; returns the front end's URL."""
    distribution, domain, created = ensure_distribution(clients.cloudfront, stage, bucket, region)
    if created:
        log(f"front end: created CloudFront distribution {distribution} for {bucket}")
    user_pool = {"region": region, "clientId": user_pool_client, "endpoint": f"https://cognito-idp.{region}.amazonaws.com"}
    changed = publish_files(clients.s3, bucket, frontend_files(api, user_pool=user_pool))
    if changed:
        log(f"front end: published {len(changed)} files to {bucket}")
        if not created:
            clients.cloudfront.create_invalidation(DistributionId=distribution, InvalidationBatch={
                "Paths": {"Quantity": 1, "Items": ["/*"]}, "CallerReference": secrets.token_hex(8)})
    url = f"https://{domain}/"
    log(f"front end URL: {url}")
    if origin not in ("*", url.rstrip("/")):
        log(f"note: the API answers browsers from {origin} only; FRONTEND_ORIGIN={url.rstrip('/')} lets this page call it")
    return url


def delete_distribution(cloudfront: Any, stage: str) -> bool:
    """Disable, wait for, and delete the stage's distribution and its origin access control."""
    found = find_distribution(cloudfront, stage)
    if found is not None:
        current = cloudfront.get_distribution_config(Id=found["Id"])
        config, etag = current["DistributionConfig"], current["ETag"]
        if config.get("Enabled"):
            log(f"disabling CloudFront distribution {found['Id']} (AWS takes a few minutes)")
            etag = cloudfront.update_distribution(Id=found["Id"], IfMatch=etag,
                                                  DistributionConfig={**config, "Enabled": False})["ETag"]
            cloudfront.get_waiter("distribution_deployed").wait(Id=found["Id"], WaiterConfig={"Delay": 30, "MaxAttempts": 60})
        cloudfront.delete_distribution(Id=found["Id"], IfMatch=etag)
        log(f"deleted CloudFront distribution {found['Id']}")
    controls = cloudfront.list_origin_access_controls().get("OriginAccessControlList", {}).get("Items", [])
    for control in controls:
        if control["Name"] == f"items-{stage}-web":
            etag = cloudfront.get_origin_access_control(Id=control["Id"])["ETag"]
            cloudfront.delete_origin_access_control(Id=control["Id"], IfMatch=etag)
    return found is not None


def package(options: Options, clients: Clients, project: ChaliceProject, out_dir: Path,
            config_path: Path = CONFIG_PATH) -> None:
    """Steps 1-4, then Chalice's Terraform packaging instead of its deployer (docs/DEPLOY.md), and
    step 6 declared in the Terraform configuration (``finish_terraform``)."""
    configured = configure(options, clients, project, config_path)
    project.package(configured.config, options.stage, out_dir)
    origin = configured.config.environment_variables.get("CORS_ALLOW_ORIGIN") or "*"
    terraform = out_dir / "chalice.tf.json"
    finished = finish_terraform(json.loads(terraform.read_text()), options.stage, origin,
                                event_dead_letter_arn=configured.outputs["EventDeadLetterQueueArn"])
    terraform.write_text(json.dumps(finished, indent=2))
    log(f"Terraform configuration and deployment package in {out_dir}")


def finish_terraform(template: dict[str, Any], stage: str, origin: str, app_name: str = "items",
                     event_dead_letter_arn: str | None = None) -> dict[str, Any]:
    """What the deploy step adds after Chalice, declared in Chalice's Terraform configuration.

    - Rule names: Chalice's Terraform names an event rule after its handler only
      (``run_cleanup-event``), so two stages in one account and region would share it; its
      deployer names it ``<app>-<stage>-<handler>-event``, and so does this.
    - ``ReportBatchItemFailures`` on every SQS event source mapping (aws/chalice#2029).
    - The gateway responses (infra/gateway_responses.py); the API deployment depends on them and
      is redeployed when they change.
    - The storage-event functions' on-failure destination, the events dead-letter queue.
    """
    resources = template.setdefault("resource", {})
    for key, rule in resources.get("aws_cloudwatch_event_rule", {}).items():
        rule["name"] = f"{app_name}-{stage}-{key}"
    for mapping in resources.get("aws_lambda_event_source_mapping", {}).values():
        if ":sqs:" in str(mapping.get("event_source_arn", "")):
            mapping["function_response_types"] = [BATCH_ITEM_FAILURES]
    for api_key, deployment in resources.get("aws_api_gateway_deployment", {}).items():
        responses = resources.setdefault("aws_api_gateway_gateway_response", {})
        names = []
        for wanted in gateway_responses.put_parameters(origin):
            name = f"{api_key}_{wanted['responseType'].lower()}"
            responses[name] = {
                "rest_api_id": f"${{aws_api_gateway_rest_api.{api_key}.id}}",
                "response_type": wanted["responseType"],
                "status_code": wanted["statusCode"],
                "response_parameters": wanted["responseParameters"],
                "response_templates": wanted["responseTemplates"],
            }
            names.append(f"aws_api_gateway_gateway_response.{name}")
        deployment["depends_on"] = sorted({*deployment.get("depends_on", []), *names})
        digest = hashlib.sha256(json.dumps(gateway_responses.put_parameters(origin), sort_keys=True).encode()).hexdigest()
        deployment["stage_description"] = f"{deployment.get('stage_description', '')} {digest[:16]}".strip()
    if event_dead_letter_arn:
        configs = resources.setdefault("aws_lambda_function_event_invoke_config", {})
        for notification in resources.get("aws_s3_bucket_notification", {}).values():
            for target in notification.get("lambda_function", []):
                function = re.fullmatch(r"\$\{aws_lambda_function\.([A-Za-z0-9_-]+)\.arn\}", str(target["lambda_function_arn"]))
                if function:
                    configs[f"{function.group(1)}_failures"] = {
                        "function_name": f"${{aws_lambda_function.{function.group(1)}.function_name}}",
                        "maximum_retry_attempts": EVENT_RETRIES,
                        "destination_config": {"on_failure": {"destination": event_dead_letter_arn}},
                    }
    return template


def destroy(stage: str, purge: bool, clients: Clients, project: ChaliceProject) -> None:
    """Remove the app; with ``purge`` also every resource and all data of the stage."""
    functions = policy.function_names(project.config(stage).chalice_app, stage)
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
    if clients.cloudfront is not None:
        delete_distribution(clients.cloudfront, stage)
    if outputs:
        empty_bucket(clients.s3, outputs["FrontendBucketName"])
        log(f"deleting stack {stack.stack_name(stage)}")
        stack.delete(clients.cloudformation, stage)
        # Retained by the template (DeletionPolicy: Retain), so deleted here, explicitly.
        delete_table(clients.dynamodb, outputs["TableName"])
        empty_bucket(clients.s3, outputs["BucketName"])
        _ignore_missing(lambda: clients.s3.delete_bucket(Bucket=outputs["BucketName"]), "NoSuchBucket")
    _ignore_missing(lambda: clients.ssm.delete_parameter(Name=secret_parameter(stage)), "ParameterNotFound")
    for group in delete_log_groups(clients.logs, functions):
        log(f"deleted log group {group}")
    log(f"stage {stage!r} purged")


def delete_log_groups(logs: Any, function_names: Iterable[str]) -> list[str]:
    """The functions' log groups (Lambda creates them; neither Chalice nor the stack deletes them)."""
    deleted = []
    for name in function_names:
        group = f"/aws/lambda/{name}"
        try:
            logs.delete_log_group(logGroupName=group)
        except logs.exceptions.ResourceNotFoundException:
            continue
        deleted.append(group)
    return deleted


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


class Refused(Exception):
    """The command cannot run as asked; the message says what to do. Nothing was changed."""


def options_from_environment(stage: str, environ: Mapping[str, str]) -> Options:
    def number(name: str, default: str) -> str:
        value = environ.get(name, "") or default
        try:
            float(value)
        except ValueError:
            raise Refused(f"{name} must be a number, got {value!r}") from None
        return value

    return Options(
        stage=stage,
        frontend_origin=environ.get("FRONTEND_ORIGIN") or None,
        alarm_email=environ.get("ALARM_EMAIL") or None,
        throttle_rate=float(number("API_THROTTLE_RATE", "100")),
        throttle_burst=int(float(number("API_THROTTLE_BURST", "200"))),
        log_retention_days=int(float(number("LOG_RETENTION_DAYS", "30"))),
        settings={name: environ[name] for name in PASSTHROUGH_SETTINGS if environ.get(name)},
    )


def check_stage(stage: str, command: str) -> None:
    if not stage:
        raise Refused(f"name the stage: make {command} STAGE=dev")
    if not stack.STAGE_PATTERN.match(stage) or stage in RESERVED_STAGES:
        raise Refused(
            f"stage {stage!r} is not allowed: a stage must match {stack.STAGE_PATTERN.pattern} "
            f"and not be one of {sorted(RESERVED_STAGES)}, e.g. STAGE=dev"
        )


def check_frontend_origin(options: Options, cloudformation: Any) -> None:
    """Refuse an origin the app would refuse at import, before anything is changed."""
    from chalicelib.config import cors
    from chalicelib.config.settings import PRODUCTION_STAGES, ConfigurationError

    origin = options.frontend_origin
    if origin is None:
        try:
            origin = stack.outputs(cloudformation, options.stage).get("FrontendOrigin")
        except LookupError:
            origin = None
    if options.stage in PRODUCTION_STAGES and origin in (None, "", "*"):
        raise Refused(
            f"stage {options.stage!r} needs the front end's origin: add FRONTEND_ORIGIN=https://app.example.com"
        )
    try:
        cors.allowed_origin({"CORS_ALLOW_ORIGIN": origin or "*", "STAGE": options.stage})
    except ConfigurationError as exc:
        raise Refused(f"FRONTEND_ORIGIN: {exc}") from None


def aws_session(environ: MutableMapping[str, str]) -> Any:
    """A boto3 session for the operator's account and region, or Refused saying what is missing.

    docs/DEPLOY.md asks for AWS_REGION; botocore (and so Chalice) reads AWS_DEFAULT_REGION. Both
    are set to the region found, so every client in this process agrees.
    """
    import boto3
    from botocore.exceptions import BotoCoreError

    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or None
    try:
        session = boto3.session.Session(region_name=region)
        credentials = session.get_credentials()
    except BotoCoreError as exc:
        raise Refused(f"the AWS configuration cannot be read: {exc}") from None
    if not session.region_name:
        raise Refused("no AWS region: set AWS_REGION, e.g. AWS_REGION=eu-west-1")
    if credentials is None:
        raise Refused("no AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    environ["AWS_REGION"] = environ["AWS_DEFAULT_REGION"] = session.region_name
    return session


def check_interpreter(command: str) -> None:
    """Deploy and package from the runtime's Python only: Chalice would name another runtime, and
    the package's bytecode would not load on it (infra/bytecode.py)."""
    if command == "destroy":
        return
    try:
        bytecode.check_interpreter(RUNTIME)
    except bytecode.BytecodeError as exc:
        raise Refused(str(exc)) from None


def run(command: str, stage: str, purge: bool, out: Path, environ: MutableMapping[str, str]) -> None:
    check_stage(stage, command)
    check_interpreter(command)
    options = options_from_environment(stage, environ)
    session = aws_session(environ)
    clients = Clients.create(session)
    log(f"stage {stage!r} in {session.region_name}")
    if command == "destroy":
        destroy(stage, purge, clients, ChaliceProject())
        return
    check_frontend_origin(options, clients.cloudformation)
    if command == "deploy":
        deploy(options, clients, ChaliceProject())
    else:
        package(options, clients, ChaliceProject(), out)


def print_policies(stage: str) -> None:
    """The IAM policy of each function of a deployed stage, as JSON (from the stack's outputs)."""
    import boto3

    outputs = stack.outputs(boto3.client("cloudformation"), stage)
    app = ChaliceProject().config(stage).chalice_app
    print(json.dumps(policy.documents(outputs, app, stage), indent=2))


def main(argv: list[str] | None = None) -> int:
    """Each failure ends with one line saying what to do (exit 2: refused before any change)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from chalicelib.config.settings import ConfigurationError

    parser = argparse.ArgumentParser(prog="python -m infra.deploy", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("deploy", "destroy", "package", "policies"))
    parser.add_argument("--stage", default="", help="stage name, e.g. dev or prod")
    parser.add_argument("--purge", action="store_true", help="destroy: delete the data too")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "terraform", help="package: output directory")
    args = parser.parse_args(argv)
    try:
        if args.command == "policies":
            print_policies(args.stage)
        else:
            run(args.command, args.stage, args.purge, args.out, os.environ)
    except Refused as exc:
        print(f"[deploy] error: {exc}", file=sys.stderr, flush=True)
        return 2
    except (stack.StackFailed, ConfigurationError, policy.UnknownFunction, bytecode.BytecodeError) as exc:
        print(f"[deploy] failed: {exc}", file=sys.stderr, flush=True)
        return 1
    except ClientError as exc:
        error = exc.response.get("Error", {})
        print(f"[deploy] failed: AWS refused {exc.operation_name}: {error.get('Code')}: {error.get('Message')}",
              file=sys.stderr, flush=True)
        return 1
    except BotoCoreError as exc:
        print(f"[deploy] failed: {exc}", file=sys.stderr, flush=True)
        return 1
    except Exception as exc:
        from chalice.deploy.deployer import ChaliceDeploymentError

        if not isinstance(exc, ChaliceDeploymentError):
            raise
        # Chalice's own report is a wrapped paragraph; one line keeps it with the others.
        print(f"[deploy] failed: chalice: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
