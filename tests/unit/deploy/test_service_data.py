"""A service's data at rest, from its spec: the queue and its DLQ, the table, the bucket
and the secrets, each encrypted with the service's rotating key; logs with retention."""

from __future__ import annotations

import json
from typing import Any

from tests.unit.deploy._template import one, ref
from tests.unit.deploy.conftest import Synthesized


def _key(app: Synthesized, name: str) -> str:
    key_id, key = one(app.resources(name, "AWS::KMS::Key"))
    assert key["Properties"]["EnableKeyRotation"] is True
    return key_id


def _key_arn(app: Synthesized, name: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [_key(app, name), "Arn"]}


def _queues(app: Synthesized, name: str) -> tuple[dict[str, Any], str, dict[str, Any]]:
    queues = app.resources(name, "AWS::SQS::Queue")
    queue = next(q for q in queues.values() if "RedrivePolicy" in q["Properties"])
    dlq_id = next(k for k, q in queues.items() if "RedrivePolicy" not in q["Properties"])
    return queue, dlq_id, queues[dlq_id]


def _denies_plain_http(policy: dict[str, Any]) -> bool:
    return any(
        statement["Effect"] == "Deny"
        and statement.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
        for statement in policy["Statement"]
    )


def test_queue_and_dlq_follow_the_spec_and_are_encrypted_and_tls_only(
    any_app: Synthesized,
) -> None:
    for name, spec in any_app.specs.items():
        if spec.queue is None:
            assert not any_app.resources(name, "AWS::SQS::Queue")
            continue
        queue, dlq_id, dlq = _queues(any_app, name)
        assert queue["Properties"]["VisibilityTimeout"] == spec.queue.visibility_timeout_s
        assert queue["Properties"]["MessageRetentionPeriod"] == spec.queue.retention_s
        assert queue["Properties"]["RedrivePolicy"] == {
            "deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]},
            "maxReceiveCount": spec.queue.max_receive_count,
        }
        assert dlq["Properties"]["MessageRetentionPeriod"] == spec.queue.dlq_retention_s
        for properties in (queue["Properties"], dlq["Properties"]):
            assert properties["KmsMasterKeyId"] == _key_arn(any_app, name)
        policies = any_app.resources(name, "AWS::SQS::QueuePolicy").values()
        assert len(policies) == 2
        assert all(_denies_plain_http(p["Properties"]["PolicyDocument"]) for p in policies)


def test_eventbridge_may_send_to_the_queues_only_for_the_services_own_rules(
    any_app: Synthesized,
) -> None:
    # CDK's SqsQueue target leaves the condition out for encrypted queues (aws/aws-cdk#11158),
    # which would let any rule of any account deliver into them.
    for name, spec in any_app.specs.items():
        rules = sorted(
            json.dumps({"Fn::GetAtt": [k, "Arn"]})
            for k in any_app.resources(name, "AWS::Events::Rule")
        )
        allowed: dict[str, list[str]] = {}
        for policy in any_app.resources(name, "AWS::SQS::QueuePolicy").values():
            (queue,) = policy["Properties"]["Queues"]
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                if statement["Effect"] != "Allow":
                    continue
                assert statement["Principal"] == {"Service": "events.amazonaws.com"}, statement
                assert statement["Action"] == "sqs:SendMessage", statement
                source = statement["Condition"]["ArnEquals"]["aws:SourceArn"]
                allowed.setdefault(queue["Ref"], []).append(json.dumps(source))
        queues = any_app.resources(name, "AWS::SQS::Queue")
        for queue_id in queues:
            # Each rule delivers to the queue, and what it cannot deliver to the DLQ.
            assert sorted(allowed.get(queue_id, [])) == (rules if spec.rules else []), queue_id


def test_dead_letters_and_old_messages_alarm_to_the_platform_topic(dev: Synthesized) -> None:
    for name, spec in dev.specs.items():
        if spec.queue is None:
            continue
        alarms = dev.resources(name, "AWS::CloudWatch::Alarm")
        by_metric = {a["Properties"].get("MetricName"): a["Properties"] for a in alarms.values()}
        _, dlq_id, _ = _queues(dev, name)
        dead_letters = by_metric["ApproximateNumberOfMessagesVisible"]
        assert dead_letters["Dimensions"] == [
            {"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq_id, "QueueName"]}}
        ]
        assert (dead_letters["Threshold"], dead_letters["EvaluationPeriods"]) == (1, 1)
        assert by_metric["ApproximateAgeOfOldestMessage"]["Threshold"] == 30 * 60
        topic = "longhaul-dev-platform:ExportsOutputRefAlarms"
        notified = [a for a in alarms.values() if topic in str(a["Properties"].get("AlarmActions"))]
        # the API's six, the DLQ, the oldest message and the jobs' four (the from-zero
        # alarms scale, not page)
        assert len(notified) == 12, name


def test_table_is_on_demand_with_pitr_the_service_key_and_the_spec_keys(
    dev: Synthesized, prod: Synthesized, fixture_app: Synthesized
) -> None:
    for app in (dev, prod, fixture_app):
        for name, spec in app.specs.items():
            tables = app.resources(name, "AWS::DynamoDB::Table")
            if spec.table is None:
                assert not tables
                continue
            _, table = one(tables)
            properties = table["Properties"]
            assert properties["BillingMode"] == "PAY_PER_REQUEST"
            assert properties["PointInTimeRecoverySpecification"] == {
                "PointInTimeRecoveryEnabled": True
            }
            assert properties["SSESpecification"] == {
                "KMSMasterKeyId": _key_arn(app, name),
                "SSEEnabled": True,
                "SSEType": "KMS",
            }
            assert properties["DeletionProtectionEnabled"] is (app.env == "prod")
            assert table["DeletionPolicy"] == ("Retain" if app.env == "prod" else "Delete")
            assert properties["KeySchema"] == [
                {"AttributeName": spec.table.pk, "KeyType": "HASH"},
                {"AttributeName": spec.table.sk, "KeyType": "RANGE"},
            ]
            indexes = {i["IndexName"]: i for i in properties["GlobalSecondaryIndexes"]}
            assert sorted(indexes) == sorted(g.name for g in spec.table.gsis)
            for gsi in spec.table.gsis:
                keys = [k["AttributeName"] for k in indexes[gsi.name]["KeySchema"]]
                assert keys == [gsi.pk, *([gsi.sk] if gsi.sk else [])]


def test_bucket_is_private_tls_only_encrypted_tiered_and_logged(any_app: Synthesized) -> None:
    for name, spec in any_app.specs.items():
        buckets = any_app.resources(name, "AWS::S3::Bucket")
        if spec.bucket is None:
            assert not buckets
            continue
        bucket_id, bucket = one(buckets)
        properties = bucket["Properties"]
        assert properties["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        (encryption,) = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert encryption == {
            "BucketKeyEnabled": True,
            "ServerSideEncryptionByDefault": {
                "KMSMasterKeyID": _key_arn(any_app, name),
                "SSEAlgorithm": "aws:kms",
            },
        }
        rules = {r["Id"]: r for r in properties["LifecycleConfiguration"]["Rules"]}
        assert rules["intelligent-tiering"]["Transitions"] == [
            {"StorageClass": "INTELLIGENT_TIERING", "TransitionInDays": 0}
        ]
        assert rules["abort-incomplete-uploads"]["AbortIncompleteMultipartUpload"] == {
            "DaysAfterInitiation": 7
        }
        expiring = {r["Prefix"]: r["ExpirationInDays"] for r in rules.values() if "Prefix" in r}
        assert expiring == spec.bucket.expire_prefixes
        assert properties["LoggingConfiguration"]["LogFilePrefix"] == f"s3-access/{name}/"
        assert "Logs" in str(properties["LoggingConfiguration"]["DestinationBucketName"])
        notifications = properties.get("NotificationConfiguration", {})
        assert notifications.get("EventBridgeConfiguration", {}).get(
            "EventBridgeEnabled", False
        ) is (spec.bucket.eventbridge_notifications)
        (policy,) = any_app.resources(name, "AWS::S3::BucketPolicy").values()
        assert policy["Properties"]["Bucket"] == ref(bucket_id)
        assert _denies_plain_http(policy["Properties"]["PolicyDocument"])


def test_bucket_notifications_need_no_custom_resource(any_app: Synthesized) -> None:
    for name in any_app.services:
        assert not any_app.resources(name, "Custom::S3BucketNotifications")
        assert not any_app.resources(name, "AWS::Lambda::Function")


def test_secrets_are_created_under_the_service_key(fixture_app: Synthesized) -> None:
    spec = fixture_app.specs["echo"]
    secrets = fixture_app.resources("echo", "AWS::SecretsManager::Secret").values()
    assert sorted(s["Properties"]["Description"] for s in secrets) == sorted(
        s.description for s in spec.secrets
    )
    for secret in secrets:
        assert secret["Properties"]["KmsKeyId"] == _key_arn(fixture_app, "echo")
        generated = secret["Properties"]["GenerateSecretString"]
        assert generated["PasswordLength"] == 48


def test_logs_are_kept_two_weeks_in_dev_and_three_months_in_prod(
    dev: Synthesized, prod: Synthesized
) -> None:
    for app, days in ((dev, 14), (prod, 90)):
        for name in app.services:
            _, group = one(app.resources(name, "AWS::Logs::LogGroup"))
            assert group["Properties"]["RetentionInDays"] == days, name


def test_a_dashboard_shows_each_service(any_app: Synthesized) -> None:
    for name in any_app.services:
        _, dashboard = one(any_app.resources(name, "AWS::CloudWatch::Dashboard"))
        body = str(dashboard["Properties"]["DashboardBody"])
        for title in ("API requests", "API target 5xx", "API p99 response time", "Running tasks"):
            assert title in body
        if any_app.specs[name].queue is not None:
            assert "Backlog per task" in body
        # the GPU worker's tasks, in its own cluster, beside the others
        gpu = any_app.specs[name].gpu_worker is not None
        assert ('"gpu-worker"' in body) is gpu, name
        assert (f"longhaul-{any_app.env}-{name}-gpu" in body) is gpu, name


def test_each_service_stack_outputs_the_names_the_operators_commands_take(
    any_app: Synthesized,
) -> None:
    for name, spec in any_app.specs.items():
        # (CDK's own exports, which the console's stack imports, are not the operators')
        outputs = {
            output
            for output in any_app.raw(name).get("Outputs", {})
            if not output.startswith("ExportsOutput")
        }
        expected = {"ApiPath"}
        expected |= {"QueueUrl", "DeadLetterQueueUrl"} if spec.queue else set()
        expected |= {"TableName"} if spec.table else set()
        expected |= {"BucketName"} if spec.bucket else set()
        expected |= {"SecretArns"} if spec.secrets else set()
        expected |= {"LakeDatabase", "LakeTable", "LakeReadersPolicyArn"} if spec.lake else set()
        expected |= {"GpuClusterName"} if spec.gpu_worker else set()
        assert outputs == expected, name


def test_media_alarms_bill_nineteen_alarm_metrics(dev: Synthesized) -> None:
    # docs/deploy.md's cost table: CloudWatch bills each metric an alarm reads (metric math
    # included); the target tracking policies' own alarms (six) come on top.
    metrics = 0
    for alarm in dev.resources("media", "AWS::CloudWatch::Alarm").values():
        queries = alarm["Properties"].get("Metrics")
        metrics += sum("MetricStat" in q for q in queries) if queries else 1
    assert metrics == 19
