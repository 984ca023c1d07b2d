"""``python -m infra.deploy`` end to end, as an operator runs it, against an AWS emulator on loopback.

One module-scoped deploy serves every assertion: the resources stack, the stage configuration and
the per-function policies, Chalice's real deployer, the post-deploy steps, the front end. Then a
second deploy (which must change nothing), ``destroy`` and ``destroy --purge``.

The command runs in a copy of the project (Chalice writes into ``.chalice/``), in its own
process, with only ``AWS_REGION`` set, as docs/DEPLOY.md says.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.run import PACKAGE_BUDGET_BYTES
from infra import deploy
from tests.infra import emulator

ROOT = Path(__file__).resolve().parents[2]
STAGE = "prod"  # the stage with the strictest checks (its CORS origin must be named)
ORIGIN = "https://app.example.com"
REGION = "eu-west-1"
PROTECTED_EXEMPT = {("/health", "GET"), ("/openapi.json", "GET")}


def copy_project(target: Path) -> Path:
    """The deployable project and its deploy tooling, in a scratch directory."""
    target.mkdir()
    for name in ("app.py", "requirements.txt"):
        shutil.copy(ROOT / name, target / name)
    for name in ("chalicelib", "infra", "frontend", "local"):
        shutil.copytree(ROOT / name, target / name, ignore=shutil.ignore_patterns("__pycache__", "node_modules"))
    (target / ".chalice").mkdir()
    shutil.copy(ROOT / ".chalice" / "config.json", target / ".chalice" / "config.json")
    # Chalice caches the Lambda-compatible dependencies it downloads here; share the project's cache.
    cache = ROOT / ".chalice" / "deployments"
    cache.mkdir(exist_ok=True)
    (target / ".chalice" / "deployments").symlink_to(cache)
    return target


def command_environment(endpoint: str, **extra: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CORS_", "STAGE", "FRONTEND_"))}
    for name in ("TABLE_NAME", "BUCKET_NAME", "QUEUE_URL", "QUEUE_NAME", "CURSOR_SECRETS", "COVERAGE_PROCESS_START"):
        environment.pop(name, None)
    environment.update({
        "AWS_REGION": REGION,  # only this one, as docs/DEPLOY.md says
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        **extra,
    })
    return environment


def run_deploy(project: Path, endpoint: str, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra.deploy", *args],
        check=False, cwd=project, env=command_environment(endpoint, **extra), capture_output=True, text=True, timeout=900,
    )


HANDLERS = {
    "api_handler": f"items-{STAGE}",
    "bearer_authorizer": f"items-{STAGE}-bearer_authorizer",
    "on_attachment_uploaded": f"items-{STAGE}-on_attachment_uploaded",
    "on_import_uploaded": f"items-{STAGE}-on_import_uploaded",
    "on_work_message": f"items-{STAGE}-on_work_message",
    "run_cleanup": f"items-{STAGE}-run_cleanup",
}
TIMEOUTS = {"on_import_uploaded": 900, "on_work_message": 60, "run_cleanup": 300}


class Deployed:
    def __init__(self, aws: emulator.Emulator, project: Path) -> None:
        self.aws = aws
        self.project = project
        self.runs: list[subprocess.CompletedProcess[str]] = []
        self.seconds: list[float] = []
        self.snapshots: list[dict[str, Any]] = []

    def client(self, service: str) -> Any:
        return self.aws.client(service, REGION)

    def outputs(self, stage: str = STAGE) -> dict[str, str]:
        stack = self.client("cloudformation").describe_stacks(StackName=f"items-{stage}-resources")["Stacks"][0]
        return {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}

    def deploy(self) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        done = run_deploy(self.project, self.aws.url, "deploy", "--stage", STAGE, FRONTEND_ORIGIN=ORIGIN)
        self.seconds.append(round(time.monotonic() - started, 1))
        assert done.returncode == 0, done.stdout + done.stderr
        self.runs.append(done)
        self.snapshots.append(snapshot(self))
        return done


def snapshot(deployed: Deployed) -> dict[str, Any]:
    """What a deploy leaves, without the identifiers and timestamps a redeploy renews."""
    lambda_ = deployed.client("lambda")
    iam = deployed.client("iam")
    functions = {}
    for name in HANDLERS.values():
        configuration = lambda_.get_function_configuration(FunctionName=name)
        role = configuration["Role"].rsplit("/", 1)[1]
        functions[name] = {
            "environment": configuration["Environment"]["Variables"],
            "timeout": configuration["Timeout"],
            "memory": configuration["MemorySize"],
            "role": role,
            "policies": {p: iam.get_role_policy(RoleName=role, PolicyName=p)["PolicyDocument"]
                         for p in iam.list_role_policies(RoleName=role)["PolicyNames"]},
            "mappings": sorted(
                (m["EventSourceArn"], m["BatchSize"], tuple(m.get("FunctionResponseTypes") or ()))
                for m in lambda_.list_event_source_mappings()["EventSourceMappings"]
                if m["FunctionArn"] == configuration["FunctionArn"]
            ),
        }
    apigateway = deployed.client("apigateway")
    (api,) = apigateway.get_rest_apis()["items"]
    authorizers = {a["id"]: a for a in apigateway.get_authorizers(restApiId=api["id"])["items"]}
    methods = {}
    for resource in apigateway.get_resources(restApiId=api["id"], embed=["methods"], limit=500)["items"]:
        for verb in resource.get("resourceMethods", {}):
            method = apigateway.get_method(restApiId=api["id"], resourceId=resource["id"], httpMethod=verb)
            authorizer = authorizers.get(method.get("authorizerId") or "")
            methods[(resource["path"], verb)] = (method["authorizationType"], authorizer["name"] if authorizer else None,
                                                 method.get("apiKeyRequired", False),
                                                 (method.get("methodIntegration") or {}).get("uri"))
    responses = {r["responseType"]: (r.get("statusCode"), r.get("responseParameters"), r.get("responseTemplates"))
                 for r in apigateway.get_gateway_responses(restApiId=api["id"])["items"]}
    events = deployed.client("events")
    rules = {r["Name"]: (r.get("ScheduleExpression"), [t["Arn"] for t in events.list_targets_by_rule(Rule=r["Name"])["Targets"]])
             for r in events.list_rules(NamePrefix=f"items-{STAGE}-")["Rules"]}
    bucket = deployed.outputs()["BucketName"]
    notifications = deployed.client("s3").get_bucket_notification_configuration(Bucket=bucket)
    frontend = deployed.client("s3").list_objects_v2(Bucket=deployed.outputs()["FrontendBucketName"]).get("Contents", [])
    cloudfront = deployed.client("cloudfront")
    distributions = [
        (d["Comment"], d["DomainName"], d["Enabled"], [(o["DomainName"], o.get("OriginAccessControlId")) for o in d["Origins"]["Items"]],
         d["DefaultCacheBehavior"]["ViewerProtocolPolicy"])
        for d in cloudfront.list_distributions()["DistributionList"].get("Items", [])
    ]
    return {
        "distributions": distributions,
        "functions": functions,
        "api": {"name": api["name"], "methods": methods, "authorizers": sorted(
            (a["name"], a["type"], a.get("authorizerUri"), a.get("identitySource"), a.get("authorizerResultTtlInSeconds"))
            for a in authorizers.values())},
        "gateway_responses": responses,
        "rules": rules,
        "notifications": sorted(
            (c["LambdaFunctionArn"], tuple(c["Events"]),
             tuple((r["Name"].lower(), r["Value"]) for r in c.get("Filter", {}).get("Key", {}).get("FilterRules", [])))
            for c in notifications.get("LambdaFunctionConfigurations", [])),
        "log_groups": sorted((g["logGroupName"], g.get("retentionInDays"))
                             for g in deployed.client("logs").describe_log_groups()["logGroups"]),
        "frontend": sorted((o["Key"], o["ETag"]) for o in frontend),
        "config": (deployed.project / ".chalice" / "config.json").read_text(),
        "policy_files": {p.name: p.read_text() for p in sorted((deployed.project / ".chalice").glob("policy-*.json"))},
    }


@pytest.fixture(scope="module")
def aws() -> Iterator[emulator.Emulator]:
    with emulator.running() as running:
        yield running


@pytest.fixture(scope="module")
def deployed(aws, tmp_path_factory) -> Deployed:
    """Deployed twice: the second deploy must change nothing."""
    done = Deployed(aws, copy_project(tmp_path_factory.mktemp("deploy") / "project"))
    done.deploy()
    done.deploy()
    return done


@pytest.fixture(scope="module")
def state(deployed) -> dict[str, Any]:
    return deployed.snapshots[0]


def test_deploy_prints_the_api_url(deployed):
    (api,) = deployed.client("apigateway").get_rest_apis()["items"]
    url = f"https://{api['id']}.execute-api.{REGION}.amazonaws.com/api/"
    assert f"[deploy] API URL: {url}" in deployed.runs[0].stdout.splitlines()
    assert deployed.runs[0].stderr.count("Traceback") == 0


def test_every_function_has_the_stages_environment(deployed, state):
    outputs = deployed.outputs()
    assert set(state["functions"]) == set(HANDLERS.values())
    for handler, name in HANDLERS.items():
        function = state["functions"][name]
        variables = function["environment"]
        assert variables["STAGE"] == STAGE
        assert variables["TABLE_NAME"] == outputs["TableName"]
        assert variables["BUCKET_NAME"] == outputs["BucketName"]
        assert variables["QUEUE_URL"] == outputs["WorkQueueUrl"]
        assert variables["CORS_ALLOW_ORIGIN"] == ORIGIN
        assert variables["CURSOR_SECRETS_PARAMETER"] == f"/items/{STAGE}/cursor-secrets"
        assert "CURSOR_SECRETS" not in variables
        assert function["timeout"] == TIMEOUTS.get(handler, 15), handler


def test_every_function_runs_the_package_with_its_bytecode(deployed):
    """The zip make deploy uploads is the compiled one (infra/bytecode.py), not Chalice's package of sources."""
    from infra import bytecode

    packages = {base64.b64encode(hashlib.sha256(path.read_bytes()).digest()).decode(): path
                for path in (deployed.project / ".chalice" / "deployments").glob("*.zip")}
    for name in HANDLERS.values():
        code = deployed.client("lambda").get_function(FunctionName=name)["Configuration"]["CodeSha256"]
        assert code in packages, name
        assert bytecode.is_compiled(packages[code]), name


def test_every_function_has_its_own_role_and_policy(deployed, state):
    roles = {function["role"] for function in state["functions"].values()}
    assert len(roles) == len(HANDLERS)
    for handler, name in HANDLERS.items():
        function = state["functions"][name]
        written = json.loads((deployed.project / ".chalice" / f"policy-{STAGE}-{handler}.json").read_text())
        assert list(function["policies"].values()) == [written], handler
        assert function["role"] == f"items-{STAGE}-{handler}"
    authorizer = next(iter(state["functions"][HANDLERS["bearer_authorizer"]]["policies"].values()))
    data = [s for s in authorizer["Statement"] if s["Sid"] not in ("FunctionLogs", "FunctionTraces")]
    assert data == [{"Sid": "KeyRecords", "Effect": "Allow", "Action": ["dynamodb:GetItem"],
                     "Resource": [deployed.outputs()["TableArn"]],
                     "Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["KEY#*"]}}}]
    consumers = {name for name, function in state["functions"].items()
                 for document in function["policies"].values() for statement in document["Statement"]
                 if "sqs:ReceiveMessage" in statement["Action"]}
    assert consumers == {HANDLERS["on_work_message"]}


def test_the_authorizer_guards_every_protected_route(state):
    ((name, kind, uri, source, ttl),) = state["api"]["authorizers"]
    assert (name, kind, source, ttl) == ("bearer_authorizer", "TOKEN", "method.request.header.Authorization", 60)
    assert f"function:{HANDLERS['bearer_authorizer']}/invocations" in uri
    methods = state["api"]["methods"]
    assert len([m for m in methods if m[1] != "OPTIONS"]) > len(PROTECTED_EXEMPT)
    for (path, verb), (authorization, authorizer, api_key_required, target) in methods.items():
        assert api_key_required is False, (path, verb)
        if verb == "OPTIONS" or (path, verb) in PROTECTED_EXEMPT:
            assert (authorization, authorizer) == ("NONE", None), (path, verb)
        else:
            assert (authorization, authorizer) == ("CUSTOM", "bearer_authorizer"), (path, verb)
            assert f"function:{HANDLERS['api_handler']}/invocations" in target


def test_s3_notifications_are_on_the_stages_bucket(deployed, state):
    functions = {name: deployed.client("lambda").get_function_configuration(FunctionName=name)["FunctionArn"]
                 for name in HANDLERS.values()}
    assert state["notifications"] == sorted([
        (functions[HANDLERS["on_attachment_uploaded"]], ("s3:ObjectCreated:*",), (("prefix", "attachments/"),)),
        (functions[HANDLERS["on_import_uploaded"]], ("s3:ObjectCreated:*",), (("prefix", "imports/"),)),
    ])


def test_the_work_queue_feeds_the_consumer_reporting_item_failures(deployed, state):
    outputs = deployed.outputs()
    for name, function in state["functions"].items():
        expected = [(outputs["WorkQueueArn"], 10, ("ReportBatchItemFailures",))] if name == HANDLERS["on_work_message"] else []
        assert function["mappings"] == expected, name


def test_the_cleanup_schedule_has_a_stage_unique_rule(deployed, state):
    from chalicelib.config.settings import cleanup_rate_minutes

    arn = deployed.client("lambda").get_function_configuration(FunctionName=HANDLERS["run_cleanup"])["FunctionArn"]
    assert state["rules"] == {f"items-{STAGE}-run_cleanup-event": (f"rate({cleanup_rate_minutes()} minutes)", [arn])}


def test_gateway_answers_are_the_contracts_problem_documents(state):
    from infra import gateway_responses

    wanted = {p["responseType"]: (p["statusCode"], p["responseParameters"], p["responseTemplates"])
              for p in gateway_responses.put_parameters(ORIGIN)}
    assert state["gateway_responses"] == wanted
    status, parameters, _ = state["gateway_responses"]["AUTHORIZER_FAILURE"]
    assert status == "503" and parameters["gatewayresponse.header.Retry-After"] == "'1'"


def test_the_front_end_is_published_behind_cloudfront_with_the_stages_api_and_no_key(deployed, state):
    outputs = deployed.outputs()
    bucket = outputs["FrontendBucketName"]
    (api,) = deployed.client("apigateway").get_rest_apis()["items"]
    api_url = f"https://{api['id']}.execute-api.{REGION}.amazonaws.com/api/"
    s3 = deployed.client("s3")
    expected = {p.relative_to(ROOT / "frontend").as_posix() for p in (ROOT / "frontend").rglob("*") if p.is_file()}
    assert {key for key, _ in state["frontend"]} == expected | {"config.js"}
    config = s3.get_object(Bucket=bucket, Key="config.js")
    assert config["Body"].read().decode() == f'window.ITEMS_CONFIG = {json.dumps({"apiUrl": api_url, "apiKey": ""})};\n'
    assert config["ContentType"].startswith("text/javascript") or config["ContentType"].startswith("application/javascript")
    index = s3.get_object(Bucket=bucket, Key="index.html")
    assert index["Body"].read() == (ROOT / "frontend" / "index.html").read_bytes()
    assert index["ContentType"] == "text/html; charset=utf-8" and index["CacheControl"] == "no-cache"

    ((comment, domain, enabled, origins, viewer),) = state["distributions"]
    assert (comment, enabled, viewer) == (f"items {STAGE} front end", True, "redirect-to-https")
    controls = deployed.client("cloudfront").list_origin_access_controls()["OriginAccessControlList"]["Items"]
    (control,) = [c for c in controls if c["Name"] == f"items-{STAGE}-web"]
    assert (control["SigningBehavior"], control["OriginAccessControlOriginType"]) == ("always", "s3")
    assert [o[0] for o in origins] == [f"{bucket}.s3.{REGION}.amazonaws.com"]
    assert f"[deploy] front end URL: https://{domain}/" in deployed.runs[0].stdout.splitlines()


def test_log_groups_have_a_retention(state):
    assert state["log_groups"] == sorted((f"/aws/lambda/{name}", 30) for name in HANDLERS.values())


def test_a_second_deploy_changes_nothing(deployed):
    first, second = deployed.snapshots
    assert second == first
    again = [line for line in deployed.runs[1].stdout.splitlines() if line.startswith("[deploy]")]
    changes = [line for line in again if any(word in line for word in ("written", "retention", "ReportBatchItemFailures",
                                                                        "throttling", "created", "published"))]
    assert changes == []
    # Chalice re-imports the API definition on every deploy, which resets API Gateway's own
    # responses; the deploy sets them again, so what the stage answers is the same (compared above).
    assert "[deploy] gateway responses: problem documents with CORS origin " + ORIGIN in again
    print(f"deploy took {deployed.seconds[0]} s, the second {deployed.seconds[1]} s")


def test_the_make_targets_pass_stage_and_purge_on():
    def dry_run(*args: str) -> str:
        return subprocess.run(["make", "-n", "-o", ".venv/.installed", *args], cwd=ROOT, check=True, capture_output=True,
                              text=True).stdout

    assert "-m infra.deploy deploy --stage \"prod\"" in dry_run("deploy", "STAGE=prod")
    assert "-m infra.deploy destroy --stage \"dev\" --purge" in dry_run("destroy", "STAGE=dev", "PURGE=1")
    assert "--purge" not in dry_run("destroy", "STAGE=dev")


def test_destroy_keeps_the_data_and_purge_leaves_nothing(deployed):
    outputs = deployed.outputs()
    kept = run_deploy(deployed.project, deployed.aws.url, "destroy", "--stage", STAGE)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert deployed.client("lambda").list_functions()["Functions"] == []
    assert deployed.client("apigateway").get_rest_apis()["items"] == []
    assert [r for r in deployed.client("iam").list_roles()["Roles"] if r["RoleName"].startswith(f"items-{STAGE}")] == []
    assert deployed.client("events").list_rules(NamePrefix=f"items-{STAGE}-")["Rules"] == []
    assert deployed.outputs() == outputs  # the stack, its table, buckets and queues stay
    assert len(deployed.client("cloudfront").list_distributions()["DistributionList"]["Items"]) == 1  # and the front end
    assert outputs["TableName"] in deployed.client("dynamodb").list_tables()["TableNames"]
    deployed.client("ssm").get_parameter(Name=f"/items/{STAGE}/cursor-secrets")

    purged = run_deploy(deployed.project, deployed.aws.url, "destroy", "--stage", STAGE, "--purge")
    assert purged.returncode == 0, purged.stdout + purged.stderr
    assert deployed.client("cloudformation").describe_stacks()["Stacks"] == [] or all(
        s["StackName"] != f"items-{STAGE}-resources" for s in deployed.client("cloudformation").describe_stacks()["Stacks"])
    assert not [t for t in deployed.client("dynamodb").list_tables()["TableNames"] if t.startswith(f"items-{STAGE}")]
    assert not [b for b in deployed.client("s3").list_buckets()["Buckets"] if b["Name"].startswith(f"items-{STAGE}-")]
    assert not [q for q in deployed.client("sqs").list_queues().get("QueueUrls", []) if f"/items-{STAGE}-" in q]
    assert deployed.client("ssm").describe_parameters()["Parameters"] == []
    assert deployed.client("logs").describe_log_groups(logGroupNamePrefix=f"/aws/lambda/items-{STAGE}")["logGroups"] == []
    assert deployed.client("cloudfront").list_distributions()["DistributionList"].get("Items", []) == []
    controls = deployed.client("cloudfront").list_origin_access_controls()["OriginAccessControlList"].get("Items", [])
    assert [c for c in controls if c["Name"].startswith(f"items-{STAGE}-")] == []


# -- make package STAGE=prod FRONTEND_ORIGIN=…, with only AWS_REGION set ---------------------------

PROD_ORIGIN = "https://items.example.org"
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def packaged(tmp_path_factory) -> Iterator[dict[str, Any]]:
    project = copy_project(tmp_path_factory.mktemp("package") / "project")
    out = project / "build" / "terraform"
    with emulator.running() as aws:  # an account of its own
        done = run_deploy(project, aws.url, "package", "--stage", "prod", "--out", str(out), FRONTEND_ORIGIN=PROD_ORIGIN)
        assert done.returncode == 0, done.stdout + done.stderr
        stack = aws.client("cloudformation", REGION).describe_stacks(StackName="items-prod-resources")["Stacks"][0]
    yield {
        "out": out,
        "project": project,
        "terraform": json.loads((out / "chalice.tf.json").read_text()),
        "outputs": {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]},
    }


def test_package_wires_the_stages_own_bucket_and_queue(packaged):
    resources = packaged["terraform"]["resource"]
    outputs = packaged["outputs"]
    (notification,) = resources["aws_s3_bucket_notification"].values()
    assert notification["bucket"] == outputs["BucketName"]
    assert sorted(f["filter_prefix"] for f in notification["lambda_function"]) == ["attachments/", "imports/"]
    (mapping,) = resources["aws_lambda_event_source_mapping"].values()
    assert mapping["event_source_arn"].endswith(f":{outputs['WorkQueueName']}")
    assert mapping["function_response_types"] == ["ReportBatchItemFailures"]
    rules = resources["aws_cloudwatch_event_rule"]
    assert [rule["name"] for rule in rules.values()] == ["items-prod-run_cleanup-event"]


def test_package_binds_the_bearer_authorizer_to_every_protected_route(packaged):
    swagger = json.loads(packaged["terraform"]["locals"]["chalice_api_swagger"])
    assert list(swagger["securityDefinitions"]) == ["bearer_authorizer"]
    assert swagger["securityDefinitions"]["bearer_authorizer"]["x-amazon-apigateway-authtype"] == "custom"
    for path, operations in swagger["paths"].items():
        for verb, operation in operations.items():
            if verb == "options" or (path, verb.upper()) in PROTECTED_EXEMPT:
                assert "security" not in operation, (path, verb)
            else:
                assert operation["security"] == [{"bearer_authorizer": []}], (path, verb)


def test_package_carries_the_stages_origin_in_every_function(packaged):
    functions = packaged["terraform"]["resource"]["aws_lambda_function"]
    assert len(functions) == len(HANDLERS)
    for key, function in functions.items():
        variables = function["environment"]["variables"]
        assert variables["CORS_ALLOW_ORIGIN"] == PROD_ORIGIN, key
        assert variables["BUCKET_NAME"] == packaged["outputs"]["BucketName"], key
        assert "CURSOR_SECRETS" not in variables


def test_package_gives_each_function_its_own_policy(packaged):
    resources = packaged["terraform"]["resource"]
    roles = {f["function_name"]: f["role"] for f in resources["aws_lambda_function"].values()}
    assert len(set(roles.values())) == len(HANDLERS)
    policies = {p["role"]: json.loads(p["policy"]) for p in resources["aws_iam_role_policy"].values()}
    for handler in HANDLERS:
        name = f"items-prod-{handler}" if handler != "api_handler" else "items-prod"
        role_ref = roles[name].replace(".arn", ".id").replace(".arn}", ".id}")
        written = json.loads((packaged["project"] / ".chalice" / f"policy-prod-{handler}.json").read_text())
        assert policies[role_ref] == written, handler


def test_package_declares_the_gateway_responses(packaged):
    from infra import gateway_responses

    responses = packaged["terraform"]["resource"]["aws_api_gateway_gateway_response"]
    declared = {r["response_type"]: (r["status_code"], r["response_parameters"], r["response_templates"])
                for r in responses.values()}
    assert declared == {p["responseType"]: (p["statusCode"], p["responseParameters"], p["responseTemplates"])
                        for p in gateway_responses.put_parameters(PROD_ORIGIN)}
    (deployment,) = packaged["terraform"]["resource"]["aws_api_gateway_deployment"].values()
    assert len(deployment["depends_on"]) == len(responses)


def test_package_is_small_and_leaves_boto3_to_lambda(packaged):
    package = packaged["out"] / "deployment.zip"
    assert package.stat().st_size <= PACKAGE_BUDGET_BYTES, f"{package.stat().st_size / MIB:.1f} MiB"
    with zipfile.ZipFile(package) as archive:
        top_level = {name.split("/")[0] for name in archive.namelist()}
    assert {"app.py", "chalicelib", "pydantic", "aws_lambda_powertools", "cryptography"} <= top_level
    assert not top_level & {"boto3", "botocore", "s3transfer", "moto", "infra"}, "the Lambda runtime provides boto3"


def _pyc_of(source: str) -> str:
    """Where the runtime's Python looks for the bytecode of ``source`` (``a/b.py`` -> ``a/__pycache__/b.<tag>.pyc``)."""
    directory, _, name = source.rpartition("/")
    tag = "cpython-" + deploy.RUNTIME.removeprefix("python").replace(".", "")
    return f"{directory}/__pycache__/{name[:-3]}.{tag}.pyc".lstrip("/")


def test_package_ships_unchecked_hash_bytecode_for_the_app_and_its_dependencies(packaged):
    """infra/bytecode.py: Lambda's /var/task is read-only, so bytecode not in the zip is compiled at every cold start."""
    with zipfile.ZipFile(packaged["out"] / "deployment.zip") as archive:
        names = set(archive.namelist())
        pycs = {name: archive.read(name) for name in names if name.endswith(".pyc")}
    sources = sorted(name for name in names if name.endswith(".py"))
    assert {"__pycache__/app.cpython-311.pyc", "chalicelib/auth/__pycache__/apikeys.cpython-311.pyc",
            "chalice/__pycache__/app.cpython-311.pyc", "pydantic/__pycache__/main.cpython-311.pyc",
            "aws_lambda_powertools/logging/__pycache__/logger.cpython-311.pyc"} <= set(pycs)
    assert [source for source in sources if _pyc_of(source) not in pycs] == []
    assert sorted(set(pycs) - {_pyc_of(source) for source in sources}) == [], "bytecode without its source"
    # PEP 552: magic number, then flags 0b01 (hash-based, source not checked), the source's hash, the code.
    assert {data[:4] for data in pycs.values()} == {importlib.util.MAGIC_NUMBER}
    assert {int.from_bytes(data[4:8], "little") for data in pycs.values()} == {0b01}


def test_the_packaged_app_runs_from_its_bytecode(packaged, tmp_path):
    """Every source of the unpacked package replaced by text that does not compile, and still the
    app and the POST path's pydantic models import: Python used the package's bytecode."""
    task = tmp_path / "task"
    with zipfile.ZipFile(packaged["out"] / "deployment.zip") as archive:
        archive.extractall(task)
    for source in task.rglob("*.py"):
        source.write_text("this is not Python\n")
    child = ("import sys; sys.dont_write_bytecode = True; sys.path.insert(0, sys.argv[1]); "
             "import app, chalicelib.items.models, chalicelib.web.http, aws_lambda_powertools.logging; "
             "print(sum(str(getattr(m, '__file__', '') or '').startswith(sys.argv[1]) for m in list(sys.modules.values())), "
             "app.__file__.startswith(sys.argv[1]), sys.modules['pydantic'].__file__.startswith(sys.argv[1]))")
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CORS_", "STAGE", "COVERAGE_"))}
    done = subprocess.run([sys.executable, "-I", "-c", child, str(task)], capture_output=True, text=True, check=False,
                          cwd=tmp_path, env={**environment, "STAGE": "dev", "AWS_DEFAULT_REGION": REGION}, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded, app_packaged, pydantic_packaged = done.stdout.split()
    assert (app_packaged, pydantic_packaged) == ("True", "True")
    assert int(loaded) > 100, "modules loaded from the package"  # 125 when written


def test_package_traces_every_function(packaged):
    """.chalice/config.json's "xray": every function of a deployed stage runs with X-Ray active tracing."""
    functions = packaged["terraform"]["resource"]["aws_lambda_function"]
    assert len(functions) == 6
    assert {name: f.get("tracing_config") for name, f in functions.items()} == {name: {"mode": "Active"} for name in functions}


def test_package_sends_failed_storage_events_to_the_events_dead_letter_queue(packaged):
    configs = packaged["terraform"]["resource"]["aws_lambda_function_event_invoke_config"]
    assert {c["function_name"] for c in configs.values()} == {
        "${aws_lambda_function.on_attachment_uploaded.function_name}", "${aws_lambda_function.on_import_uploaded.function_name}"}
    for config in configs.values():
        assert config["destination_config"] == {"on_failure": {"destination": packaged["outputs"]["EventDeadLetterQueueArn"]}}
        assert config["maximum_retry_attempts"] == 2
