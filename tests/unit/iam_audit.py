"""Record the AWS operations the application makes during the unit suite, as IAM requirements.

Installed by tests/unit/conftest.py before any client exists: a handler on every botocore session
sees each API call (``before-parameter-build``) and each presigned POST (``before-sign``), and
turns it into the IAM actions and resource ARNs AWS would authorise it against.

Only the deployed code's calls count. A call is the application's when ``app.py`` or a module of
``chalicelib/`` is on the call stack (a route, handler or service made it, whether a test went
through the API or called the service directly), or when no test code is (a thread the
application started). Calls tests make with their own clients — building the stack, seeding or
inspecting the table and bucket — stand for the operator's or a browser's, not the function's.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[2]
APP_FILE = str(ROOT / "app.py")
CHALICELIB_DIR = str(ROOT / "chalicelib") + "/"
TESTS_DIR = str(ROOT / "tests") + "/"
ACCOUNT = "123456789012"  # moto's default account: the one the unit stack lives in


@dataclass(frozen=True)
class Requirement:
    action: str
    resource: str
    operation: str  # what the code called, e.g. "dynamodb.TransactWriteItems", for messages
    function: str | None = None  # the Chalice function (handler) that made it; None: not known
    # DynamoDB: the prefix (up to '#') of the partition key the call touches, for the
    # ``dynamodb:LeadingKeys`` condition; kept to its prefix so the record stays small.
    leading_key: str | None = None


# Which deployed function runs a frame, by where the frame is: the entry points of each function.
# app.py's routes, middleware and helpers run in the API handler; its event handlers and the
# authorizer are functions of their own, and delegate to chalicelib/events.py (which tests also
# call directly) or chalicelib/cleanup/job.py.
ENTRY_POINTS: dict[tuple[str, str], str] = {
    ("app.py", "bearer_authorizer"): "bearer_authorizer",
    ("app.py", "on_attachment_uploaded"): "on_attachment_uploaded",
    ("app.py", "on_import_uploaded"): "on_import_uploaded",
    ("app.py", "on_work_message"): "on_work_message",
    ("app.py", "run_cleanup"): "run_cleanup",
    ("chalicelib/events.py", "attachment_uploaded"): "on_attachment_uploaded",
    ("chalicelib/events.py", "import_uploaded"): "on_import_uploaded",
    ("chalicelib/events.py", "work_messages"): "on_work_message",
    ("chalicelib/events.py", "cleanup"): "run_cleanup",
    ("chalicelib/cleanup/job.py", "run"): "run_cleanup",
    ("chalicelib/imports/consumer.py", "*"): "on_work_message",
    ("chalicelib/imports/pipeline.py", "*"): "on_import_uploaded",
}
API_HANDLER = "api_handler"


# requirement -> the test during which it was first recorded
RECORDED: dict[Requirement, str] = {}
_state: dict[str, Any] = {"installed": False, "deselected": False, "collected": set(), "outputs": None}

# Grants for features that API.md specifies and whose code is not on this branch yet: each entry
# (function, statement Sid, action) must be unused today, and fails the check the moment its
# feature exercises it (then delete it).
AWAITING_FEATURES: dict[tuple[str, str, str], str] = {}


# Tables a test made as copies of the stack's (``stand_in``): a call on a copy is recorded as the
# same call on the table it copies, so the function's policy is still checked against that table.
STAND_INS: dict[str, str] = {}


def stand_in(copy: str, original: str | None) -> None:
    """Record calls on table ``copy`` as calls on ``original`` (``None``: stop)."""
    if original is None:
        STAND_INS.pop(copy, None)
    else:
        STAND_INS[copy] = original


def install() -> None:
    """Register the recorder for every botocore session created from now on."""
    if _state["installed"]:
        return
    from botocore import handlers

    handlers.BUILTIN_HANDLERS.append(("before-parameter-build", _on_call))
    handlers.BUILTIN_HANDLERS.append(("before-sign.s3.PutObject", _on_presigned_post))
    _state["installed"] = True


def _on_call(params: Mapping[str, Any], model: Any, context: Mapping[str, Any], **_: Any) -> None:
    if context.get("is_presign_request") and model.name == "CreateBucket":
        return  # the operation botocore borrows to build a presigned POST; see _on_presigned_post
    if not made_by_application():
        return
    service = model.service_model.signing_name
    region = context.get("client_region") or "us-east-1"
    function = calling_function()
    leading = leading_key_prefix(params) if service == "dynamodb" else None
    for action, resource in requirements(service, model.name, params, region):
        _record(Requirement(action, resource, f"{service}.{model.name}", function, leading))


def _on_presigned_post(request: Any, **_: Any) -> None:
    fields = request.context.get("s3-presign-post-fields")
    policy = request.context.get("s3-presign-post-policy")
    if fields is None or policy is None or not made_by_application():
        return
    bucket = next(c["bucket"] for c in policy["conditions"] if isinstance(c, dict) and "bucket" in c)
    _record(Requirement("s3:PutObject", f"arn:aws:s3:::{bucket}/{fields['key']}", "s3.generate_presigned_post",
                        calling_function()))


def _record(requirement: Requirement) -> None:
    RECORDED.setdefault(requirement, os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" ", 1)[0])


def made_by_application() -> bool:
    frame = sys._getframe(1)
    in_tests = False
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename == APP_FILE or filename.startswith(CHALICELIB_DIR):
            return True
        in_tests = in_tests or filename.startswith(TESTS_DIR)
        frame = frame.f_back  # type: ignore[assignment]
    return not in_tests


def leading_key_prefix(params: Mapping[str, Any]) -> str | None:
    """``KEY#`` for a call on key ``{"pk": {"S": "KEY#..."}}``; None when the call names no single key."""
    key = params.get("Key") or params.get("Item") or {}
    value = (key.get("pk") or {}).get("S")
    if not isinstance(value, str):
        return None
    return value.split("#", 1)[0] + "#" if "#" in value else value


def calling_function() -> str | None:
    """The function whose code is running: the outermost entry point on the stack; else, with an
    app.py frame on it (a route, a middleware), the API handler; None when only chalicelib code
    is (a test called a service directly)."""
    frame = sys._getframe(1)
    found: str | None = None
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename == APP_FILE or filename.startswith(CHALICELIB_DIR):
            base = filename[len(str(ROOT)) + 1:]
            entry = ENTRY_POINTS.get((base, frame.f_code.co_name)) or ENTRY_POINTS.get((base, "*"))
            if entry is not None:
                found = entry
            elif filename == APP_FILE and found is None:
                found = API_HANDLER
        frame = frame.f_back  # type: ignore[assignment]
    return found


# -- API operation -> IAM (action, resource) ---------------------------------------------------

def requirements(service: str, operation: str, params: Mapping[str, Any], region: str) -> list[tuple[str, str]]:
    if service == "dynamodb":
        return _dynamodb(operation, params, region)
    if service == "s3":
        return _s3(operation, params)
    if service == "sqs":
        return _sqs(operation, params, region)
    if service == "ssm" and "Name" in params:
        return [(f"ssm:{operation}", f"arn:aws:ssm:{region}:{ACCOUNT}:parameter{params['Name']}")]
    return [(f"{service}:{operation}", "*")]


_TRANSACT_ACTIONS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem",
                     "Get": "GetItem"}


def _dynamodb(operation: str, params: Mapping[str, Any], region: str) -> list[tuple[str, str]]:
    def table(name: str) -> str:
        name = STAND_INS.get(name, name)
        return name if name.startswith("arn:") else f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/{name}"

    if operation in ("TransactWriteItems", "TransactGetItems"):
        return [
            (f"dynamodb:{_TRANSACT_ACTIONS[kind]}", table(entry[kind]["TableName"]))
            for entry in params["TransactItems"]
            for kind in entry
        ]
    if operation in ("BatchWriteItem", "BatchGetItem"):
        return [(f"dynamodb:{operation}", table(name)) for name in params["RequestItems"]]
    resource = table(params["TableName"])
    if params.get("IndexName"):
        resource += f"/index/{params['IndexName']}"
    return [(f"dynamodb:{operation}", resource)]


# s3:ListBucket goes with every object read: without it a missing key answers 403, not 404.
_S3_OBJECT_ACTIONS = {
    "HeadObject": ("s3:GetObject", "s3:ListBucket"),
    "GetObject": ("s3:GetObject", "s3:ListBucket"),
    "PutObject": ("s3:PutObject",),
    "CreateMultipartUpload": ("s3:PutObject",),
    "UploadPart": ("s3:PutObject",),
    "CompleteMultipartUpload": ("s3:PutObject",),
    "DeleteObject": ("s3:DeleteObject",),
}
_S3_BUCKET_ACTIONS = {
    "ListObjects": "s3:ListBucket",
    "ListObjectsV2": "s3:ListBucket",
    "HeadBucket": "s3:ListBucket",
    "ListObjectVersions": "s3:ListBucketVersions",
}


def _s3(operation: str, params: Mapping[str, Any]) -> list[tuple[str, str]]:
    bucket = f"arn:aws:s3:::{params['Bucket']}"

    def on(action: str, key: str) -> tuple[str, str]:
        return (action, bucket) if action.startswith("s3:ListBucket") else (action, f"{bucket}/{key}")

    if operation == "DeleteObjects":
        return [("s3:DeleteObject", f"{bucket}/{obj['Key']}") for obj in params["Delete"]["Objects"]]
    if operation == "CopyObject":
        source = params["CopySource"]
        source_path = f"{source['Bucket']}/{source['Key']}" if isinstance(source, dict) else source.lstrip("/")
        return [("s3:PutObject", f"{bucket}/{params['Key']}"), ("s3:GetObject", f"arn:aws:s3:::{source_path}")]
    if operation in _S3_OBJECT_ACTIONS:
        return [on(action, params["Key"]) for action in _S3_OBJECT_ACTIONS[operation]]
    if operation in _S3_BUCKET_ACTIONS:
        return [(_S3_BUCKET_ACTIONS[operation], bucket)]
    if "Key" in params:
        return [(f"s3:{operation}", f"{bucket}/{params['Key']}")]
    return [(f"s3:{operation}", bucket)]


_SQS_BATCH = {"SendMessageBatch": "SendMessage", "DeleteMessageBatch": "DeleteMessage",
              "ChangeMessageVisibilityBatch": "ChangeMessageVisibility"}


def _sqs(operation: str, params: Mapping[str, Any], region: str) -> list[tuple[str, str]]:
    if "QueueUrl" in params:
        account, name = urlparse(params["QueueUrl"]).path.strip("/").split("/")[-2:]
    else:
        account, name = params.get("QueueOwnerAWSAccountId", ACCOUNT), params["QueueName"]
    return [(f"sqs:{_SQS_BATCH.get(operation, operation)}", f"arn:aws:sqs:{region}:{account}:{name}")]


# -- what the platform does with the function's role -------------------------------------------

def active_tracing() -> bool:
    """Whether .chalice/config.json turns X-Ray active tracing on (then Lambda writes segments with the role)."""
    config = json.loads((Path(__file__).resolve().parents[2] / ".chalice" / "config.json").read_text())
    return bool(config.get("xray"))


def platform_requirements(app: Any, functions: Mapping[str, str], outputs: Mapping[str, str]) -> set[Requirement]:
    """Calls Lambda makes with each function's role on its behalf: logging, polling the queue.

    ``functions`` maps Chalice's function names to Lambda's (infra.policy.handlers)."""
    _, partition, _, region, account = outputs["TableArn"].split(":")[:5]
    needed = set()
    for handler, name in functions.items():
        group = f"arn:{partition}:logs:{region}:{account}:log-group:/aws/lambda/{name}"
        needed.add(Requirement("logs:CreateLogGroup", group, f"lambda runtime ({name})", handler))
        for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
            needed.add(Requirement(action, f"{group}:log-stream:2026/01/01/[$LATEST]0", f"lambda runtime ({name})", handler))
        if active_tracing():
            for action in ("xray:PutTraceSegments", "xray:PutTelemetryRecords"):
                needed.add(Requirement(action, "*", f"lambda runtime, active tracing ({name})", handler))
    from chalice.app import S3EventConfig, SQSEventConfig

    for source in app.event_sources:
        if isinstance(source, S3EventConfig):
            # Its on-failure destination (infra/deploy.py): Lambda sends a failed event there with the function's role.
            needed.add(Requirement("sqs:SendMessage", outputs["EventDeadLetterQueueArn"], f"on-failure destination ({source.name})",
                                   source.name))
        if isinstance(source, SQSEventConfig):
            # The stage has one consumed queue; the event source mapping polls it with the consumer's role.
            for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"):
                needed.add(Requirement(action, outputs["WorkQueueArn"], f"event source mapping ({source.name})", source.name))
    return needed


# -- a small IAM evaluator (identity policy, no conditions) ------------------------------------

def _pattern(glob: str, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return re.compile(f"^{body}$", re.IGNORECASE if ignore_case else 0)


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def statement_allows(statement: Mapping[str, Any], action: str, resource: str, leading_key: str | None = None) -> bool:
    unsupported = {"NotAction", "NotResource", "Principal", "NotPrincipal"} & set(statement)
    if unsupported:
        raise ValueError(f"statement {statement.get('Sid')} uses {sorted(unsupported)}, which this check cannot evaluate")
    return (
        any(_pattern(a, True).match(action) for a in _as_list(statement["Action"]))
        and any(_pattern(r, False).match(resource) for r in _as_list(statement["Resource"]))
        and _condition_holds(statement, leading_key)
    )


def _condition_holds(statement: Mapping[str, Any], leading_key: str | None) -> bool:
    """The one condition the policies use: ``ForAllValues:StringLike`` on ``dynamodb:LeadingKeys``.

    A call that names no key (a Query, a batch) has no single leading key here and is refused,
    as IAM would refuse a Query on a partition outside the pattern."""
    condition = statement.get("Condition")
    if not condition:
        return True
    if set(condition) != {"ForAllValues:StringLike"} or set(condition["ForAllValues:StringLike"]) != {"dynamodb:LeadingKeys"}:
        raise ValueError(f"statement {statement.get('Sid')} uses a condition this check cannot evaluate: {condition}")
    if leading_key is None:
        return False
    patterns = _as_list(condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"])
    return any(_pattern(p, False).match(leading_key + "x") for p in patterns)


def allowed(policy: Mapping[str, Any], action: str, resource: str, leading_key: str | None = None) -> bool:
    verdict = False
    for statement in policy["Statement"]:
        if statement_allows(statement, action, resource, leading_key):
            if statement["Effect"] == "Deny":
                return False
            verdict = True
    return verdict


# -- which run is complete enough to call a grant unused ---------------------------------------

def order_last(items: list[Any], module_name: str) -> None:
    """Move the policy test to the end of the run and note whether the whole unit suite runs."""
    _state["collected"] = {Path(str(item.path)) for item in items}
    last = [item for item in items if Path(str(item.path)).name == module_name]
    items[:] = [item for item in items if item not in last] + last


def note_deselected(items: Iterable[Any]) -> None:
    unit_dir = Path(__file__).parent
    if any(Path(str(item.path)).is_relative_to(unit_dir) for item in items):
        _state["deselected"] = True


def full_selection() -> bool:
    """Every unit test module was collected and nothing in them was deselected (-k, -m, --lf)."""
    on_disk = set(Path(__file__).parent.rglob("test_*.py"))
    return on_disk <= _state["collected"] and not _state["deselected"]


def full_suite() -> bool:
    """This process runs the whole unit suite: all of it is selected, and no pytest-xdist worker
    shares it out (a worker runs part of it; see "under pytest-xdist" below)."""
    return full_selection() and not os.environ.get("PYTEST_XDIST_WORKER")


# -- the checks, on a run's record --------------------------------------------------------------

def allowed_to(policies: Mapping[str, Mapping[str, Any]], req: Requirement) -> bool:
    """The call is allowed to the function that made it (to some function, when that is not known)."""
    candidates = [policies[req.function]] if req.function else list(policies.values())
    return any(allowed(policy, req.action, req.resource, req.leading_key) for policy in candidates)


def denied_calls(recorded: Mapping[Requirement, str], policies: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Each recorded call its function's policy does not allow, as one line."""
    return sorted(
        f"{req.function or 'some function'}: {req.action} on {req.resource} ({req.operation}, first in {test})"
        for req, test in recorded.items()
        if req.function not in policies and req.function is not None or not allowed_to(policies, req)
    )


def unused_grants(policies: Mapping[str, Mapping[str, Any]], needed: Iterable[Requirement]) -> set[tuple[str, str, str]]:
    """(function, statement Sid, action) of every grant no call of that function needed."""
    needed = list(needed)
    return {
        (handler, statement["Sid"], action)
        for handler, policy in policies.items()
        for statement in policy["Statement"]
        for action in statement["Action"]
        if not any(
            req.function == handler and req.action == action
            and statement_allows(statement, req.action, req.resource, req.leading_key)
            for req in needed
        )
    }


def unused_grant_problems(policies: Mapping[str, Mapping[str, Any]], needed: Iterable[Requirement]) -> list[str]:
    """A grant used by nothing, or an AWAITING_FEATURES entry that is used now: one line each."""
    unused = unused_grants(policies, needed)
    problems = [f"granted to a function that never uses it: {grant}" for grant in sorted(unused - set(AWAITING_FEATURES))]
    problems += [f"now exercised by the tests; remove from AWAITING_FEATURES: {grant}"
                 for grant in sorted(set(AWAITING_FEATURES) - unused)]
    return problems


# -- under pytest-xdist: each worker's record, checked as one by the controller -----------------
#
# Each worker runs part of the unit suite, so none of them can say that a grant is unused. Each
# worker hands what it recorded (with the policies and the platform's calls, which it can compute
# from its own mocked stack) to the controller with its results (xdist's ``workeroutput``); the
# controller merges them and, once every worker has finished, checks both ways: every recorded
# call is allowed to its function, and every grant is used when the whole unit suite ran.
# tests/conftest.py registers ``ControllerAudit`` on the controller.

WORKER_OUTPUT_KEY = "iam_audit"
POLICY_TEST = "test_iam_policy.py"


def note_stack(outputs: Mapping[str, str]) -> None:
    """The unit stack's outputs (ARNs), kept for ``export`` after the mock is gone."""
    _state["outputs"] = dict(outputs)


def export() -> dict[str, Any] | None:
    """What this worker recorded, as plain data (execnet carries only builtin types)."""
    outputs = _state["outputs"]
    if outputs is None:
        return None  # this worker ran no unit test that used the mocked stack
    import app
    from infra import policy

    handlers = policy.handlers(app.app, "test")
    return {
        "recorded": [[*astuple(req), test] for req, test in RECORDED.items()],
        "policies": policy.documents(outputs, app.app, "test"),
        "platform": [list(astuple(req)) for req in platform_requirements(app.app, handlers, outputs)],
        "full_selection": full_selection(),
    }


def merge(payloads: Iterable[Mapping[str, Any]]) -> tuple[dict[Requirement, str], dict[str, Any], set[Requirement], bool]:
    """The workers' records as one: (recorded, policies, platform requirements, whole suite selected)."""
    recorded: dict[Requirement, str] = {}
    policies: dict[str, Any] = {}
    platform: set[Requirement] = set()
    selected = True
    for payload in payloads:
        for *fields, test in payload["recorded"]:
            recorded.setdefault(Requirement(*fields), test)
        platform.update(Requirement(*fields) for fields in payload["platform"])
        if policies and payload["policies"] != policies:
            raise ValueError("the workers computed different policies for the same stage")
        policies = payload["policies"]
        selected = selected and payload["full_selection"]
    return recorded, policies, platform, selected


def verdicts(payloads: list[Mapping[str, Any]], complete: bool) -> dict[str, tuple[str, list[str]]]:
    """Check name -> (outcome, problems) over all workers' records; ``complete``: every selected
    unit test ran to its end on a worker that reported back (no -x stop, no crashed worker)."""
    if not payloads:
        return {}
    recorded, policies, platform, selected = merge(payloads)
    found: dict[str, tuple[str, list[str]]] = {}
    if not recorded and selected and complete:
        found["test_every_recorded_call_is_allowed_to_its_function"] = ("failed", ["the whole unit suite ran and no AWS call was recorded"])
    else:
        denied = denied_calls(recorded, policies)
        found["test_every_recorded_call_is_allowed_to_its_function"] = ("failed" if denied else "passed", denied)
    if selected and complete:
        unused = unused_grant_problems(policies, set(recorded) | platform)
        found["test_no_grant_goes_unused"] = ("failed" if unused else "passed", unused)
    else:
        found["test_no_grant_goes_unused"] = ("skipped", ["a grant is unused only if the whole unit suite ran without it"])
    return found


class ControllerAudit:
    """The controller's side: collects each worker's record, checks them all at the session's end,
    and reports each check as a test of tests/unit/test_iam_policy.py (a failure fails the run)."""

    def __init__(self) -> None:
        self.payloads: list[Mapping[str, Any]] = []
        self.unit_tests: set[str] = set()
        self.finished: set[str] = set()
        self.lost_worker = False

    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self.unit_tests.update(nodeid for nodeid in ids if _is_unit_test(nodeid))

    def pytest_runtest_logreport(self, report: Any) -> None:
        if report.when == "teardown":
            self.finished.add(report.nodeid)

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        if error is not None:
            self.lost_worker = True  # what it recorded is lost with it
        payload = getattr(node, "workeroutput", {}).get(WORKER_OUTPUT_KEY)
        if payload is not None:
            self.payloads.append(payload)

    def pytest_sessionfinish(self, session: Any) -> None:
        from _pytest.reports import TestReport

        complete = not self.lost_worker and self.unit_tests <= self.finished
        results = verdicts(self.payloads, complete)
        path = f"{Path(__file__).parent.relative_to(session.config.rootpath).as_posix()}/{POLICY_TEST}"
        for name, (outcome, problems) in results.items():
            nodeid = f"{path}::{name}[all workers]"
            longrepr: Any = None
            if outcome == "failed":
                longrepr = "\n".join(problems)
            elif outcome == "skipped":
                longrepr = (path, 0, f"Skipped: {problems[0]}")
            report = TestReport(nodeid, (path, None, name), {}, outcome, longrepr, "call")
            session.config.hook.pytest_runtest_logreport(report=report)
            if outcome == "failed" and session.exitstatus == 0:
                session.exitstatus = 1  # pytest.ExitCode.TESTS_FAILED


def _is_unit_test(nodeid: str) -> bool:
    return "tests/unit/" in f"/{nodeid}" and POLICY_TEST not in nodeid
