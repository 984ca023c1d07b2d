"""The local stage's deployment artifacts, as ``chalice package`` builds them, and what they say.

``make run`` serves what would be deployed: it runs ``chalice package --pkg-format terraform
--stage local`` (the same packager ``make package`` uses for a cloud stage) and reads, from
``chalice.tf.json``:

- the API definition (``locals.chalice_api_swagger``): routes, methods, authorizers, CORS
  preflight answers, binary media types;
- each function (``aws_lambda_function``): handler, timeout, memory, environment variables;
- the event wiring: S3 notifications (events, prefix, suffix), the SQS event source mapping
  (batch size, response types) and the schedule (rate).

The package is built from a copy of the project's inputs under ``.local/package/`` with the local
stage's environment written into the copy's ``.chalice/config.json``, as ``make deploy`` writes a
cloud stage's. The copy's stage uses a fixed role instead of a policy file: the local stack does
not evaluate IAM (docs/LOCAL.md). Packaging takes seconds, so its output is cached, keyed on the
inputs (app.py, chalicelib, .chalice/config.json, requirements.txt) and the stage's environment.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STAGE = "local"
INPUTS = ("app.py", "chalicelib", ".chalice/config.json", "requirements.txt")
LOCAL_ROLE = "arn:aws:iam::123456789012:role/items-local"
# infra/deploy.py turns this on for every SQS event source mapping after Chalice's deployer ran
# (Chalice cannot express it, aws/chalice#2029), so the deployed mapping has it even though the
# package output does not say so.
POST_DEPLOY_RESPONSE_TYPES = ("ReportBatchItemFailures",)
_REFERENCE = re.compile(r"^\$\{aws_lambda_function\.([A-Za-z0-9_-]+)\.(?:arn|invoke_arn)\}$")
_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


class PackageError(RuntimeError):
    """``chalice package`` failed, or produced something the local stack cannot serve."""


@dataclass(frozen=True)
class FunctionSpec:
    key: str  # the Terraform resource name, e.g. "api_handler"
    name: str  # the Lambda function name, e.g. "items-local"
    handler: str  # "module.attribute"
    timeout: float
    memory: int
    environment: dict[str, str]


@dataclass(frozen=True)
class StorageNotification:
    bucket: str
    function: str
    events: tuple[str, ...]
    prefix: str = ""
    suffix: str = ""


@dataclass(frozen=True)
class QueueMapping:
    queue: str
    function: str
    batch_size: int
    response_types: tuple[str, ...]

    @property
    def report_batch_item_failures(self) -> bool:
        return "ReportBatchItemFailures" in self.response_types


@dataclass(frozen=True)
class Schedule:
    rule: str
    function: str
    rate_seconds: float


@dataclass
class Package:
    swagger: dict[str, Any]
    functions: dict[str, FunctionSpec]
    notifications: list[StorageNotification] = field(default_factory=list)
    mappings: list[QueueMapping] = field(default_factory=list)
    schedules: list[Schedule] = field(default_factory=list)
    api_stage: str = "api"
    api_function: str | None = None


@dataclass(frozen=True)
class Built:
    package: Package
    directory: Path
    cached: bool
    seconds: float


def function_of(reference: str) -> str:
    """``${aws_lambda_function.api_handler.invoke_arn}`` -> ``api_handler``."""
    match = _REFERENCE.match(reference)
    if not match:
        raise PackageError(f"not a reference to a packaged function: {reference!r}")
    return match.group(1)


def rate_seconds(expression: str) -> float:
    match = _RATE.match(expression.strip())
    if not match:
        raise PackageError(f"schedule {expression!r}: the local stack runs rate(...) schedules only")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2).rstrip("s")]


def parse(terraform: Mapping[str, Any]) -> Package:
    """What the local stack needs from ``chalice.tf.json``."""
    resources = terraform.get("resource", {})
    functions = {
        key: FunctionSpec(
            key=key,
            name=str(spec["function_name"]),
            handler=str(spec["handler"]),
            timeout=float(spec.get("timeout", 3)),
            memory=int(spec.get("memory_size", 128)),
            environment={k: str(v) for k, v in ((spec.get("environment") or {}).get("variables") or {}).items()},
        )
        for key, spec in resources.get("aws_lambda_function", {}).items()
    }
    swagger_text = (terraform.get("locals") or {}).get("chalice_api_swagger")
    swagger: dict[str, Any] = json.loads(swagger_text) if isinstance(swagger_text, str) else dict(swagger_text or {})
    package = Package(swagger=swagger, functions=functions)
    for deployment in resources.get("aws_api_gateway_deployment", {}).values():
        package.api_stage = str(deployment.get("stage_name") or package.api_stage)
    for notification in resources.get("aws_s3_bucket_notification", {}).values():
        for target in notification.get("lambda_function", []):
            package.notifications.append(
                StorageNotification(
                    bucket=str(notification["bucket"]),
                    function=function_of(target["lambda_function_arn"]),
                    events=tuple(target.get("events", [])),
                    prefix=str(target.get("filter_prefix") or ""),
                    suffix=str(target.get("filter_suffix") or ""),
                )
            )
    for mapping in resources.get("aws_lambda_event_source_mapping", {}).values():
        source = str(mapping["event_source_arn"])
        if ":sqs:" not in source:
            raise PackageError(f"event source {source!r}: the local stack delivers SQS mappings only")
        declared = tuple(mapping.get("function_response_types") or ())
        package.mappings.append(
            QueueMapping(
                queue=source.rsplit(":", 1)[-1],
                function=function_of(mapping["function_name"]),
                batch_size=int(mapping.get("batch_size", 10)),
                response_types=tuple(dict.fromkeys((*declared, *POST_DEPLOY_RESPONSE_TYPES))),
            )
        )
    rules = resources.get("aws_cloudwatch_event_rule", {})
    for target in resources.get("aws_cloudwatch_event_target", {}).values():
        rule_key = str(target["rule"]).split(".")[1] if str(target["rule"]).startswith("${") else str(target["rule"])
        rule = rules.get(rule_key) or {}
        package.schedules.append(
            Schedule(
                rule=str(rule.get("name") or rule_key),
                function=function_of(target["arn"]),
                rate_seconds=rate_seconds(str(rule.get("schedule_expression", ""))),
            )
        )
    integrations = [
        operation.get("x-amazon-apigateway-integration", {})
        for methods in swagger.get("paths", {}).values()
        for operation in methods.values()
        if isinstance(operation, dict)
    ]
    proxied = {function_of(i["uri"]) for i in integrations if i.get("type") == "aws_proxy"}
    if len(proxied) > 1:
        raise PackageError(f"the API proxies to several functions ({sorted(proxied)}); expected one")
    package.api_function = next(iter(proxied), None)
    return package


def _input_files(root: Path) -> list[Path]:
    files: list[Path] = []
    for name in INPUTS:
        path = root / name
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        elif path.is_file():
            files.append(path)
    return files


def cache_key(root: Path, stage_environment: Mapping[str, str]) -> str:
    """A digest of everything the package depends on."""
    from chalice import __version__ as chalice_version

    digest = hashlib.sha256()
    digest.update(f"chalice {chalice_version}\n".encode())
    digest.update(json.dumps(dict(sorted(stage_environment.items()))).encode())
    for path in _input_files(root):
        digest.update(f"\n{path.relative_to(root).as_posix()}\n".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:24]


def _copy_inputs(root: Path, source: Path) -> None:
    """Mirror the inputs into ``source`` (kept between runs: Chalice reuses its deployment zip
    from ``.chalice/deployments`` while requirements.txt is unchanged)."""
    for name in ("app.py", "chalicelib", "requirements.txt"):
        target = source / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        original = root / name
        if not original.exists():
            continue
        if original.is_dir():
            shutil.copytree(original, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(original, target)


def _write_stage_config(root: Path, source: Path, stage_environment: Mapping[str, str]) -> None:
    config = json.loads((root / ".chalice" / "config.json").read_text())
    stage = config.setdefault("stages", {}).setdefault(STAGE, {"api_gateway_stage": "api"})
    stage.pop("iam_policy_file", None)
    stage.update({"manage_iam_role": False, "iam_role_arn": LOCAL_ROLE})
    stage.setdefault("environment_variables", {}).update(stage_environment)
    (source / ".chalice").mkdir(parents=True, exist_ok=True)
    (source / ".chalice" / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def build(
    stage_environment: Mapping[str, str],
    import_environment: Mapping[str, str],
    cache_dir: Path,
    root: Path = ROOT,
    keep: int = 50,
) -> Built:
    """The local stage's package: from the cache when the inputs are unchanged, else built.

    ``stage_environment`` is written into the stage's configuration (it is in every function's
    environment); ``import_environment`` is only seen by the app while Chalice loads it.
    """
    started = time.monotonic()
    cache_dir = cache_dir.resolve()
    cache_dir.mkdir(parents=True, exist_ok=True)
    with (cache_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # stacks starting side by side share the cache
        built = _build_locked(stage_environment, import_environment, cache_dir, root, keep)
    return Built(built.package, built.directory, built.cached, time.monotonic() - started)


def _build_locked(
    stage_environment: Mapping[str, str],
    import_environment: Mapping[str, str],
    cache_dir: Path,
    root: Path,
    keep: int,
) -> Built:
    key = cache_key(root, stage_environment)
    out = cache_dir / key
    terraform = out / "chalice.tf.json"
    cached = terraform.is_file()
    if not cached:
        source = cache_dir / "src"
        source.mkdir(parents=True, exist_ok=True)
        _copy_inputs(root, source)
        _write_stage_config(root, source, stage_environment)
        staging = cache_dir / f".{key}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        env = {
            **os.environ,
            **import_environment,
            **stage_environment,
            "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        }
        chalice = [sys.executable, "-c", "import sys; from chalice.cli import main; sys.exit(main())"]
        command = [*chalice, "--project-dir", str(source), "package", "--pkg-format", "terraform",
                   "--stage", STAGE, str(staging)]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            detail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise PackageError(f"chalice package --stage {STAGE} failed: {detail}")
        # The local stack runs the project's sources, not the zip (docs/LOCAL.md): keep the
        # definition only, so that cache entries stay small and many can be kept.
        (staging / "deployment.zip").unlink(missing_ok=True)
        shutil.rmtree(out, ignore_errors=True)
        staging.rename(out)
        _prune(cache_dir, keep_latest=keep)
    package = parse(json.loads(terraform.read_text()))
    os.utime(out)
    return Built(package, out, cached, 0.0)


def _prune(cache_dir: Path, keep_latest: int) -> None:
    entries = sorted(
        (p for p in cache_dir.iterdir() if p.is_dir() and p.name not in ("src",) and not p.name.startswith(".")),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for stale in entries[keep_latest:]:
        shutil.rmtree(stale, ignore_errors=True)

