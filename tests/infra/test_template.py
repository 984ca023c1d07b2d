"""The resources template: linted, scanned, and holding the properties the service relies on."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from infra import stack

ROOT = Path(__file__).resolve().parents[2]
CHECKOV = ROOT / ".venv" / "checkov" / "bin" / "checkov"
# What the local stack, the unit tests and the deploy step read (infra/stack.py, local/stack.py).
REQUIRED_OUTPUTS = {
    "TableName", "TableArn", "BucketName", "BucketArn", "WorkQueueUrl", "WorkQueueArn", "WorkQueueName",
    "DeadLetterQueueUrl", "DeadLetterQueueArn", "EventDeadLetterQueueUrl", "EventDeadLetterQueueArn",
    "FrontendBucketName", "FrontendBucketArn", "FrontendOrigin", "Stage",
}


@pytest.fixture(scope="module")
def template():
    from cfnlint.decode import cfn_yaml

    return cfn_yaml.load(str(stack.TEMPLATE))


def resources_of(template, resource_type):
    return {name: r for name, r in template["Resources"].items() if r["Type"] == resource_type}


def test_cfn_lint_finds_nothing():
    result = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), "--format", "parseable", str(stack.TEMPLATE)],
        check=False, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_checkov_fails_no_check_and_every_skip_says_why():
    assert CHECKOV.exists(), "checkov is installed by `make test` (requirements-checkov.txt)"
    result = subprocess.run(
        [str(CHECKOV), "--file", str(stack.TEMPLATE), "--framework", "cloudformation", "--skip-download", "--output", "json"],
        check=False, capture_output=True, text=True, timeout=300, env={"PATH": "/usr/bin:/bin", "HOME": str(ROOT / ".venv" / "checkov")},
    )
    report = json.loads(result.stdout)
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert not failed, failed
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] > 10
    for skipped in report["results"]["skipped_checks"]:
        assert len(skipped["check_result"].get("suppress_comment", "")) > 40, skipped["check_id"]


def test_stage_pattern_matches_the_deploy_scripts(template):
    assert template["Parameters"]["Stage"]["AllowedPattern"] == stack.STAGE_PATTERN.pattern


def test_outputs_name_everything_the_app_needs(template):
    assert set(template["Outputs"]) >= REQUIRED_OUTPUTS


def test_table_is_on_demand_indexed_recoverable_encrypted_and_retained(template):
    table = template["Resources"]["Table"]
    props = table["Properties"]
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert props["DeletionProtectionEnabled"] is True
    indexes = {index["IndexName"]: index for index in props["GlobalSecondaryIndexes"]}
    assert set(indexes) == {"due-index", "name-index", "updated-index"}
    assert [k["AttributeName"] for k in indexes["due-index"]["KeySchema"]] == ["due_pk", "due_at"]
    assert indexes["due-index"]["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    # Finding items: partitioned by tenant, whole items projected (a page is one Query).
    for name, sort_key in (("name-index", "name_key"), ("updated-index", "updated_key")):
        assert [k["AttributeName"] for k in indexes[name]["KeySchema"]] == ["pk", sort_key]
        assert indexes[name]["Projection"] == {"ProjectionType": "ALL"}


def test_the_code_uses_the_keys_and_index_the_template_declares(template):
    from chalicelib.store import layout

    props = template["Resources"]["Table"]["Properties"]
    indexes = {index["IndexName"]: index for index in props["GlobalSecondaryIndexes"]}
    assert set(indexes) == {layout.DUE_INDEX, layout.NAME_INDEX, layout.UPDATED_INDEX}
    assert indexes[layout.NAME_INDEX]["KeySchema"][1]["AttributeName"] == layout.NAME_KEY
    assert indexes[layout.UPDATED_INDEX]["KeySchema"][1]["AttributeName"] == layout.UPDATED_KEY
    assert [k["AttributeName"] for k in props["KeySchema"]] == ["pk", "sk"]
    assert {a["AttributeName"] for a in props["AttributeDefinitions"]} == {
        "pk", "sk", "due_pk", "due_at", layout.NAME_KEY, layout.UPDATED_KEY
    }


@pytest.mark.parametrize("name", ["Bucket", "FrontendBucket"])
def test_buckets_are_private_encrypted_versioned_and_tls_only(template, name):
    props = template["Resources"][name]["Properties"]
    assert set(props["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(props["PublicAccessBlockConfiguration"]) == 4
    assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    rules = props["LifecycleConfiguration"]["Rules"]
    assert any(r.get("AbortIncompleteMultipartUpload") for r in rules)
    assert any(r.get("NoncurrentVersionExpiration") for r in rules)
    (bucket_policy,) = [
        r for r in resources_of(template, "AWS::S3::BucketPolicy").values() if r["Properties"]["Bucket"] == {"Ref": name}
    ]
    statement, *others = bucket_policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny" and statement["Action"] == "s3:*" and statement["Principal"] == "*"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert {"Fn::GetAtt": [name, "Arn"]} in statement["Resource"]
    if name == "Bucket":
        assert others == []
    else:  # CloudFront, through origin access control, reads the front end's files; no one else
        (read,) = others
        assert read["Principal"] == {"Service": "cloudfront.amazonaws.com"} and read["Action"] == "s3:GetObject"
        assert set(read["Condition"]) == {"StringEquals", "ArnLike"}


def test_data_bucket_accepts_browser_uploads_from_the_front_end_only(template):
    props = template["Resources"]["Bucket"]["Properties"]
    (rule,) = props["CorsConfiguration"]["CorsRules"]
    assert rule["AllowedOrigins"] == [{"Ref": "FrontendOrigin"}]
    assert "POST" in rule["AllowedMethods"] and "PUT" not in rule["AllowedMethods"]
    imports = [r for r in props["LifecycleConfiguration"]["Rules"] if r.get("Prefix") == "imports/"]
    assert imports and imports[0]["ExpirationInDays"] == {"Ref": "ImportRetentionDays"}
    assert "CorsConfiguration" not in template["Resources"]["FrontendBucket"]["Properties"]


def test_queues_are_encrypted_and_failures_end_in_the_dead_letter_queue(template):
    queues = resources_of(template, "AWS::SQS::Queue")
    assert set(queues) == {"WorkQueue", "DeadLetterQueue", "EventDeadLetterQueue"}
    for queue in queues.values():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True
    redrive = queues["WorkQueue"]["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    assert 1 < redrive["maxReceiveCount"] <= 10
    dlq_retention = queues["DeadLetterQueue"]["Properties"]["MessageRetentionPeriod"]
    assert dlq_retention > queues["WorkQueue"]["Properties"]["MessageRetentionPeriod"]
    assert queues["EventDeadLetterQueue"]["Properties"]["MessageRetentionPeriod"] == dlq_retention


def sqs_handlers(app_source: str) -> list[str]:
    """Names of the functions app.py subscribes to SQS (read from the source: importing app.py
    would fix its import-time settings for the rest of the test session)."""
    names = []
    for node in ast.walk(ast.parse(app_source)):
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                call = decorator.func if isinstance(decorator, ast.Call) else decorator
                if isinstance(call, ast.Attribute) and call.attr == "on_sqs_message":
                    names.append(node.name)
    return names


def consumer_timeouts(config_from_disk: dict, handlers: list[str]) -> dict[tuple[str, str], int]:
    """Each stage's timeout of each SQS consumer, as Chalice resolves it (per-function settings
    over stage settings over global ones). Without a consumer yet, the one a new consumer gets."""
    from chalice.config import Config

    timeouts = {}
    for stage in config_from_disk["stages"]:
        for handler in handlers or ["a_new_consumer"]:
            config = Config(chalice_stage=stage, function_name=handler, config_from_disk=config_from_disk)
            timeouts[(stage, handler)] = config.lambda_timeout
    return timeouts


def test_visibility_timeout_is_at_least_six_times_the_consumer_timeout(template):
    visibility = template["Resources"]["WorkQueue"]["Properties"]["VisibilityTimeout"]
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    timeouts = consumer_timeouts(config, sqs_handlers((ROOT / "app.py").read_text()))
    assert timeouts
    too_long = {key: t for key, t in timeouts.items() if t * 6 > visibility}
    assert not too_long, f"WorkQueue VisibilityTimeout {visibility} s is under 6x these consumer timeouts: {too_long}"


def test_the_timeout_check_reads_per_function_settings():
    source = "@app.on_sqs_message(queue='q')\ndef consume(event):\n    pass\n"
    assert sqs_handlers(source) == ["consume"]
    config = {
        "lambda_timeout": 15,
        "stages": {
            "dev": {"lambda_functions": {"consume": {"lambda_timeout": 90}}},
            "prod": {"lambda_timeout": 20},
        },
    }
    assert consumer_timeouts(config, ["consume"]) == {("dev", "consume"): 90, ("prod", "consume"): 20}


# -- alarms and dashboard (issue: an alarm can never watch a metric nobody writes) -------------------

# Metrics AWS publishes by itself, with the dimension each alarm uses: "Lambda function metrics"
# (https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html), "Available CloudWatch
# metrics for Amazon SQS" (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-available-cloudwatch-metrics.html),
# "DynamoDB Metrics and dimensions" (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/metrics-dimensions.html).
AWS_PUBLISHED = {
    ("AWS/Lambda", "Errors"): {"FunctionName"},
    ("AWS/Lambda", "Throttles"): {"FunctionName"},
    ("AWS/SQS", "ApproximateNumberOfMessagesVisible"): {"QueueName"},
    ("AWS/SQS", "ApproximateAgeOfOldestMessage"): {"QueueName"},
    ("AWS/DynamoDB", "ReadThrottleEvents"): {"TableName"},
    ("AWS/DynamoDB", "WriteThrottleEvents"): {"TableName"},
}


def alarm_metrics(alarm):
    """(namespace, name, dimensions) of each metric an alarm reads, directly or in metric math."""
    props = alarm["Properties"]
    if "MetricName" in props:
        return [(props["Namespace"], props["MetricName"], props.get("Dimensions", []))]
    return [(m["MetricStat"]["Metric"]["Namespace"], m["MetricStat"]["Metric"]["MetricName"],
             m["MetricStat"]["Metric"].get("Dimensions", [])) for m in props["Metrics"] if "MetricStat" in m]


def emitted_by_the_code():
    """What chalicelib/util/metrics.py writes: (metric, dimension names, service value) per dimension set."""
    from chalicelib.util import metrics

    return {(name, frozenset(dims)) for family in metrics.FAMILIES for name in family.units for dims in family.dimension_sets}


def test_every_alarm_watches_a_metric_the_code_writes_or_aws_publishes(template):
    from chalicelib.util import metrics

    emitted = emitted_by_the_code()
    alarms = resources_of(template, "AWS::CloudWatch::Alarm")
    assert len(alarms) >= 20
    for name, alarm in alarms.items():
        for namespace, metric, dimensions in alarm_metrics(alarm):
            names = frozenset(d["Name"] for d in dimensions)
            if namespace == {"Fn::Sub": f"{metrics.NAMESPACE_PREFIX}/${{Stage}}"}:
                assert (metric, names) in emitted, (name, metric, names)
                service = [d["Value"] for d in dimensions if d["Name"] == metrics.SERVICE_DIMENSION]
                assert service == [metrics.SERVICE], name
            else:
                assert AWS_PUBLISHED.get((namespace, metric)) == names, (name, namespace, metric, names)


def test_the_alarms_cover_the_issue_list_and_notify_the_topic(template):
    import app
    from infra import policy

    alarms = resources_of(template, "AWS::CloudWatch::Alarm")
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    watched = {(ns if isinstance(ns, str) else ns["Fn::Sub"], metric) for a in alarms.values() for ns, metric, _ in alarm_metrics(a)}
    for metric in ("ServerErrors", "Latency", "AuthorizerFailure", "ImportsFailed", "CleanupLag"):
        assert ("ItemsService/${Stage}", metric) in watched, metric
    for metric in ("ReadThrottleEvents", "WriteThrottleEvents"):
        assert ("AWS/DynamoDB", metric) in watched
    queues = {json.dumps(d["Value"]) for a in alarms.values() for ns, metric, dims in alarm_metrics(a) if ns == "AWS/SQS"
              for d in dims}
    assert json.dumps({"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}) in queues
    assert json.dumps({"Fn::GetAtt": ["EventDeadLetterQueue", "QueueName"]}) in queues
    assert json.dumps({"Fn::GetAtt": ["WorkQueue", "QueueName"]}) in queues
    # Each deployed function's errors and throttles, by the names Chalice gives them.
    functions = set(policy.function_names(app.app, "${Stage}"))
    for metric in ("Errors", "Throttles"):
        named = {d["Value"]["Fn::Sub"] for a in alarms.values() for ns, m, dims in alarm_metrics(a)
                 if (ns, m) == ("AWS/Lambda", metric) for d in dims}
        assert named == functions, metric
    topic = template["Resources"]["AlarmTopic"]
    assert topic["Type"] == "AWS::SNS::Topic"
    subscription = template["Resources"]["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail" and subscription["Properties"]["Endpoint"] == {"Ref": "AlarmEmail"}


def test_every_alarm_has_a_runbook_line(template):
    import re

    guide = (ROOT / "docs" / "OPERATIONS.md").read_text()
    anchors = {re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
               for line in guide.splitlines() if line.startswith("#")}
    for name, alarm in resources_of(template, "AWS::CloudWatch::Alarm").items():
        (anchor,) = re.findall(r"docs/OPERATIONS\.md#([a-z0-9-]+)", alarm["Properties"]["AlarmDescription"])
        assert anchor in anchors, (name, anchor)


def test_the_dashboard_shows_metrics_that_exist(template):
    from chalicelib.util import metrics

    body = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    dashboard = json.loads(body.replace("${Stage}", "ci").replace("${AWS::Region}", "us-east-1"))
    names = {name for family in metrics.FAMILIES for name in family.units}
    shown = set()
    for widget in dashboard["widgets"]:
        for row in widget["properties"]["metrics"]:
            if isinstance(row[0], str):
                namespace, metric = row[0], row[1]
                if namespace == "ItemsService/ci":
                    assert metric in names, metric
                    shown.add(metric)
                else:
                    assert (namespace, metric) in AWS_PUBLISHED, (namespace, metric)
            else:
                shown.update(n for n in names if f'MetricName="{n}"' in row[0]["expression"])
    assert shown == names, names - shown
