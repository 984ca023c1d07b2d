"""Each function's IAM policy allows every AWS call that function made in this run, and no more.

The calls are recorded by tests/unit/iam_audit.py over the whole unit suite, each with the
function whose code made it; this module runs last (tests/unit/conftest.py orders it so). A call
its function's policy does not allow fails here, as does a grant that function never uses, so
each policy follows its code in both directions. A call no function can be named for (a test
called a service directly) must be allowed by some function's policy.

Under pytest-xdist each worker runs part of the suite: the checks here see that worker's calls,
and the controller checks all workers' calls together once they have all finished, reported as
``test_iam_policy.py::test_...[all workers]`` (``iam_audit.ControllerAudit``).
"""

from __future__ import annotations

import json

import pytest

from infra import policy as stage_policy
from tests.unit import iam_audit


@pytest.fixture(scope="module")
def outputs(aws_mock):
    import boto3

    from infra import stack

    return stack.outputs(boto3.client("cloudformation"), "test")


@pytest.fixture(scope="module")
def handlers(app_module):
    return stage_policy.handlers(app_module.app, "test")


@pytest.fixture(scope="module")
def functions(handlers):
    return sorted(handlers.values())


@pytest.fixture(scope="module")
def policies(outputs, app_module):
    return stage_policy.documents(outputs, app_module.app, "test")


@pytest.fixture(scope="module")
def needed(app_module, handlers, outputs):
    return set(iam_audit.RECORDED) | iam_audit.platform_requirements(app_module.app, handlers, outputs)


def test_every_recorded_call_is_allowed_to_its_function(policies):
    if not iam_audit.RECORDED and not iam_audit.full_suite():
        pytest.skip("no application call ran in this selection")
    assert iam_audit.RECORDED, "the whole unit suite ran and no AWS call was recorded: the recorder is not installed"
    denied = iam_audit.denied_calls(iam_audit.RECORDED, policies)
    assert not denied, "the function's policy (infra/policy.py) does not allow:\n" + "\n".join(denied)


def test_no_grant_goes_unused(policies, needed):
    if not iam_audit.full_suite():
        pytest.skip("a grant is unused only if the whole unit suite ran without it (under xdist: checked by the controller)")
    problems = iam_audit.unused_grant_problems(policies, needed)
    assert not problems, "\n".join(problems)


def test_every_function_gets_its_own_logs_only(policies, needed, handlers):
    for req in needed:
        if req.action.startswith("logs:"):
            for handler, policy in policies.items():
                assert iam_audit.allowed(policy, req.action, req.resource) == (handler == req.function), (handler, req)


def test_the_authorizer_reads_key_records_only(policies, outputs):
    authorizer = policies["bearer_authorizer"]
    table = outputs["TableArn"]
    assert iam_audit.allowed(authorizer, "dynamodb:GetItem", table, "KEY#")
    assert not iam_audit.allowed(authorizer, "dynamodb:GetItem", table, "T#")  # a tenant's data
    assert not iam_audit.allowed(authorizer, "dynamodb:Query", table, "KEY#")
    assert not iam_audit.allowed(authorizer, "dynamodb:PutItem", table, "KEY#")
    assert not iam_audit.allowed(authorizer, "s3:GetObject", f"{outputs['BucketArn']}/attachments/x")
    assert not iam_audit.allowed(authorizer, "sqs:ReceiveMessage", outputs["WorkQueueArn"])


def test_only_the_consumer_receives_and_deletes_work(policies, outputs):
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage"):
        able = {handler for handler, policy in policies.items() if iam_audit.allowed(policy, action, outputs["WorkQueueArn"])}
        assert able == {"on_work_message"}, action


def test_policy_is_scoped_to_the_stage(policies, outputs, functions):
    log_prefix = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/"
    parameter = f"arn:aws:ssm:us-east-1:123456789012:parameter{stage_policy.cursor_secrets_parameter('test')}"
    own = (outputs["TableArn"], outputs["BucketArn"], outputs["WorkQueueArn"], outputs["EventDeadLetterQueueArn"], parameter)
    for statement in [s for policy in policies.values() for s in policy["Statement"]]:
        assert statement["Effect"] == "Allow"
        for action in statement["Action"]:
            assert "*" not in action, action
        if statement["Sid"] == "FunctionTraces":  # X-Ray's write actions take no resource: only these two may have "*"
            assert statement["Action"] == ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
            assert statement["Resource"] == ["*"]
            continue
        for resource in statement["Resource"]:
            assert resource != "*"
            if resource.startswith(log_prefix):
                name = resource.removeprefix(log_prefix).removesuffix(":*")
                assert name in functions, resource
            else:
                assert resource.startswith(own), resource
                assert resource in own or resource.startswith(tuple(f"{arn}/" for arn in own)), resource


def test_policy_names_this_stage_only(policies):
    for policy in policies.values():
        assert_this_stage_only(policy)


def assert_this_stage_only(policy):
    assert not iam_audit.allowed(policy, "dynamodb:GetItem", "arn:aws:dynamodb:us-east-1:123456789012:table/items-prod")
    assert not iam_audit.allowed(policy, "s3:GetObject", "arn:aws:s3:::items-prod-123456789012-us-east-1/a")
    assert not iam_audit.allowed(policy, "sqs:SendMessage", "arn:aws:sqs:us-east-1:123456789012:items-test-work-dlq")
    assert not iam_audit.allowed(
        policy, "logs:PutLogEvents", "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/items-testing:log-stream:x"
    )
    assert not iam_audit.allowed(policy, "dynamodb:Scan", "arn:aws:dynamodb:us-east-1:123456789012:table/items-test")
    assert not iam_audit.allowed(policy, "dynamodb:DeleteTable", "arn:aws:dynamodb:us-east-1:123456789012:table/items-test")


def test_policy_files_are_rewritten_only_when_they_change(tmp_path, policies):
    assert stage_policy.write_all(tmp_path, "test", policies) == [f"policy-test-{handler}.json" for handler in policies]
    assert json.loads((tmp_path / "policy-test-bearer_authorizer.json").read_text()) == policies["bearer_authorizer"]
    assert stage_policy.write_all(tmp_path, "test", policies) == []


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
    from chalicelib.auth import apikeys
    from chalicelib.store import aws

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
        iam_audit.Requirement("dynamodb:GetItem", outputs["TableArn"], "dynamodb.GetItem", None, "KEY#"),
    }
    assert recorded == {
        iam_audit.Requirement("dynamodb:GetItem", outputs["TableArn"], "dynamodb.GetItem", "api_handler", "T#"),
    }


def test_calls_are_recorded_with_the_function_that_made_them(as_application, outputs):
    from chalicelib.store import aws

    key = {"pk": {"S": "KEY#abc"}, "sk": {"S": "KEY"}}
    source = "def bearer_authorizer():\n    client.get_item(TableName=table, Key=key)\nbearer_authorizer()\n"
    recorded = as_application(source, client=aws.dynamodb(), table=outputs["TableName"], key=key)
    assert {(req.function, req.leading_key) for req in recorded} == {("bearer_authorizer", "KEY#")}


def test_operations_map_to_the_actions_iam_checks(as_application, outputs):
    from chalicelib.store import aws

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
    with pytest.raises(ValueError, match="condition"):
        iam_audit.allowed({"Statement": [{**document["Statement"][0], "Condition": {"Bool": {"aws:SecureTransport": "true"}}}]},
                          "s3:GetObject", "arn:aws:s3:::b/in/x")


# -- under pytest-xdist: the controller's check of all workers' records ------------------------

def uses_of_every_grant(policies):
    """One call per grant (function, statement, action), made by the function it is granted to."""
    uses = []
    for handler, policy in policies.items():
        for statement in policy["Statement"]:
            resource = statement["Resource"][0].replace("*", "x")
            condition = statement.get("Condition", {}).get("ForAllValues:StringLike", {})
            leading = iam_audit._as_list(condition["dynamodb:LeadingKeys"])[0].split("*")[0] if condition else None
            for action in statement["Action"]:
                uses.append(iam_audit.Requirement(action, resource, "synthetic", handler, leading))
    return uses


def worker_payload(policies, recorded, full_selection=True):
    return {"recorded": [[*iam_audit.astuple(req), "tests/unit/test_x.py::test_y"] for req in recorded],
            "policies": policies, "platform": [], "full_selection": full_selection}


def test_the_controller_merges_the_workers_and_fails_an_unused_grant(policies):
    uses = uses_of_every_grant(policies)
    assert all(iam_audit.allowed_to(policies, req) for req in uses)
    halves = [worker_payload(policies, uses[0::2]), worker_payload(policies, uses[1::2])]
    assert iam_audit.verdicts(halves, complete=True) == {
        "test_every_recorded_call_is_allowed_to_its_function": ("passed", []), "test_no_grant_goes_unused": ("passed", []),
    }
    # A grant only the second worker used: without that worker's record it is unused.
    first_only = [worker_payload(policies, uses[0::2]), worker_payload(policies, uses[1::2][1:])]
    outcome, problems = iam_audit.verdicts(first_only, complete=True)["test_no_grant_goes_unused"]
    lost = uses[1]
    assert outcome == "failed"
    assert any(lost.function in p and f"'{lost.action}'" in p for p in problems), problems
    # A run that stopped early, or a selection, proves nothing unused.
    assert iam_audit.verdicts(first_only, complete=False)["test_no_grant_goes_unused"][0] == "skipped"
    partial = [worker_payload(policies, uses[0::2]), worker_payload(policies, uses[1::2][1:], full_selection=False)]
    assert iam_audit.verdicts(partial, complete=True)["test_no_grant_goes_unused"][0] == "skipped"


def test_the_controller_fails_a_call_no_policy_allows(policies, outputs):
    uses = uses_of_every_grant(policies)
    refused = iam_audit.Requirement("dynamodb:DeleteTable", outputs["TableArn"], "dynamodb.DeleteTable", "api_handler", None)
    payloads = [worker_payload(policies, uses), worker_payload(policies, [refused])]
    outcome, problems = iam_audit.verdicts(payloads, complete=True)["test_every_recorded_call_is_allowed_to_its_function"]
    assert outcome == "failed"
    assert problems == [f"api_handler: dynamodb:DeleteTable on {outputs['TableArn']} (dynamodb.DeleteTable, "
                        "first in tests/unit/test_x.py::test_y)"]
    nothing = [worker_payload(policies, [])]
    assert iam_audit.verdicts(nothing, complete=True)["test_every_recorded_call_is_allowed_to_its_function"][0] == "failed"


class FakeHook:
    def __init__(self):
        self.reports = []

    def pytest_runtest_logreport(self, report):
        self.reports.append(report)


def test_the_controller_reports_its_checks_as_tests_and_fails_the_run(policies, tmp_path):
    from types import SimpleNamespace

    uses = uses_of_every_grant(policies)
    unit_ids = ["tests/unit/test_a.py::test_1", "tests/unit/test_b.py::test_2"]

    def run(recorded_by_worker, crashed=False, finished=unit_ids):
        audit = iam_audit.ControllerAudit()
        hook = FakeHook()
        session = SimpleNamespace(config=SimpleNamespace(rootpath=iam_audit.ROOT, hook=hook), exitstatus=0)
        for number, recorded in enumerate(recorded_by_worker):
            node = SimpleNamespace(workeroutput={iam_audit.WORKER_OUTPUT_KEY: worker_payload(policies, recorded)})
            audit.pytest_xdist_node_collection_finished(node, [*unit_ids, "tests/infra/test_t.py::test_3"])
            audit.pytest_testnodedown(node, "crashed" if crashed and number == 0 else None)
        for nodeid in finished:
            audit.pytest_runtest_logreport(SimpleNamespace(nodeid=nodeid, when="teardown"))
        audit.pytest_sessionfinish(session)
        return {report.nodeid.rsplit("::", 1)[1]: report for report in hook.reports}, session.exitstatus

    reports, status = run([uses[0::2], uses[1::2]])
    assert status == 0
    assert {name: r.outcome for name, r in reports.items()} == {
        "test_every_recorded_call_is_allowed_to_its_function[all workers]": "passed",
        "test_no_grant_goes_unused[all workers]": "passed",
    }
    assert all(r.nodeid.startswith("tests/unit/test_iam_policy.py::") for r in reports.values())

    reports, status = run([uses[0::2], uses[1::2][1:]])
    assert status == 1
    assert reports["test_no_grant_goes_unused[all workers]"].outcome == "failed"
    assert uses[1].action in str(reports["test_no_grant_goes_unused[all workers]"].longrepr)

    for incomplete in ({"crashed": True}, {"finished": unit_ids[:1]}):
        reports, status = run([uses[0::2], uses[1::2][1:]], **incomplete)
        assert status == 0
        assert reports["test_no_grant_goes_unused[all workers]"].outcome == "skipped"
