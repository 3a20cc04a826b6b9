"""Least privilege: each task role's actions, listed here and checked against what its
spec declares; no wildcard action anywhere; secrets reach the tasks as references and as
task-definition secrets, never as values in the environment; and the environment is
exactly what the kit reads."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match
from pydantic import AliasChoices

from longhaul.config import KitSettings
from longhaul.spec import ServiceSpec
from longhaul_deploy.gpu_worker import DEVICE_VARIABLE
from tests.unit.deploy._template import (
    container,
    environment,
    one,
    policy_actions,
    ref,
    role_of_task,
)
from tests.unit.deploy.conftest import Synthesized

BUS = "<import longhaul-dev-platform:ExportsOutputFnGetAttBusEA82B648ArnBC65BB77>"


def _logical_id(app: Synthesized, name: str, kind: str, *, redrive: bool | None = None) -> str:
    for logical_id, resource in app.resources(name, kind).items():
        if redrive is None or ("RedrivePolicy" in resource["Properties"]) == redrive:
            return logical_id
    raise AssertionError(f"no {kind} in {name}")


def _expected(app: Synthesized, spec: ServiceSpec, role: str) -> dict[str, set[str]]:
    """What `role` of `spec` may do, and on what, written out by hand."""
    name = spec.name
    expected: dict[str, set[str]] = {}

    def allow(resources: set[str], *actions: str) -> None:
        for action in actions:
            expected.setdefault(action, set()).update(resources)

    allow({BUS.replace("dev", app.env)}, "events:PutEvents", "events:DescribeEventBus")
    # the collector sidecar's spans to X-Ray (no resource-level permissions exist for these)
    allow({"*"}, "xray:PutTraceSegments", "xray:PutTelemetryRecords")
    # the GPU worker is the worker in a cluster of its own
    worker = role in ("worker", "gpu-worker")
    cluster = f"longhaul-{app.env}-{name}-gpu" if role == "gpu-worker" else f"longhaul-{app.env}"
    if spec.queue:
        queue = {f"<{_logical_id(app, name, 'AWS::SQS::Queue', redrive=True)}.Arn>"}
        dlq = {f"<{_logical_id(app, name, 'AWS::SQS::Queue', redrive=False)}.Arn>"}
        allow(queue, "sqs:GetQueueUrl", "sqs:SendMessage")
        if not worker:
            # the admin routes: find the DLQ, look at it, redrive it (test_admin_grants.py)
            allow(queue, "sqs:GetQueueAttributes")
            allow(
                dlq,
                "sqs:GetQueueUrl",
                "sqs:GetQueueAttributes",
                "sqs:ReceiveMessage",
                "sqs:ChangeMessageVisibility",
                "sqs:DeleteMessage",
            )
        if worker:
            allow(
                queue,
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibility",
                "sqs:GetQueueAttributes",
            )
            allow(dlq, "sqs:GetQueueUrl", "sqs:SendMessage")
    if spec.table:
        table = f"<{_logical_id(app, name, 'AWS::DynamoDB::Table')}.Arn>"
        allow(
            {table},
            "dynamodb:GetItem",
            "dynamodb:BatchGetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:ConditionCheckItem",
            "dynamodb:Query",
            "dynamodb:DescribeTable",
        )
        allow({f"{table}/index/{gsi.name}" for gsi in spec.table.gsis}, "dynamodb:Query")
    if spec.bucket:
        bucket = f"<{_logical_id(app, name, 'AWS::S3::Bucket')}.Arn>"
        allow({f"{bucket}/*"}, "s3:GetObject", "s3:PutObject")
        if worker:
            allow({f"{bucket}/*"}, "s3:DeleteObject", "s3:AbortMultipartUpload")
        allow({bucket, f"{bucket}/*"}, "s3:ListBucket")
    # The service's feature flags: its one parameter, read only (docs/flags.md).
    flags = _logical_id(app, name, "AWS::SSM::Parameter")
    allow(
        {f"arn:<AWS::Partition>:ssm:us-east-1:<AWS::AccountId>:parameter<{flags}>"},
        "ssm:GetParameter",
    )
    for secret in app.resources(name, "AWS::SecretsManager::Secret"):
        allow({f"<{secret}>"}, "secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret")
    if spec.queue or spec.table or spec.bucket or spec.secrets:
        key = f"<{_logical_id(app, name, 'AWS::KMS::Key')}.Arn>"
        allow({key}, "kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey")
    if worker:
        allow(
            {f"arn:<AWS::Partition>:ecs:us-east-1:<AWS::AccountId>:task/{cluster}/*"},
            "ecs:UpdateTaskProtection",
            "ecs:DescribeTasks",
        )
        prefix = "GpuWorker" if role == "gpu-worker" else "Worker"
        allow({f"<{_worker_service(app, name, prefix)}>"}, "ecs:DescribeServices")
    return expected


def _worker_service(app: Synthesized, name: str, prefix: str = "Worker") -> str:
    (logical_id,) = [k for k in app.resources(name, "AWS::ECS::Service") if k.startswith(prefix)]
    return logical_id


ROLES = {"ApiTask": "api", "WorkerTask": "worker", "GpuWorkerTask": "gpu-worker"}


def _tasks(app: Synthesized, name: str) -> dict[str, dict[str, Any]]:
    """The service's task definitions by role (`api`, `worker`, `gpu-worker`)."""
    found = {}
    for logical_id, task in app.resources(name, "AWS::ECS::TaskDefinition").items():
        (role,) = [r for prefix, r in ROLES.items() if logical_id.startswith(prefix)]
        found[role] = task
    return found


def test_each_task_role_has_exactly_the_actions_its_spec_needs(any_app: Synthesized) -> None:
    for name, spec in any_app.specs.items():
        tasks = _tasks(any_app, name)
        roles = (
            ["api"]
            + (["worker"] if spec.queue else [])
            + (["gpu-worker"] if spec.gpu_worker else [])
        )
        assert sorted(tasks) == sorted(roles), name
        for role, task in tasks.items():
            granted = policy_actions(any_app.raw(name), role_of_task(task))
            assert granted == _expected(any_app, spec, role), (name, role)


def test_worker_describes_its_own_tasks_in_the_cluster_and_its_own_service_only(
    any_app: Synthesized,
) -> None:
    """The deployment watch's two reads: DescribeTasks on the cluster's tasks, with the
    `ecs:cluster` condition, and DescribeServices on the worker service's ARN, in a policy
    that depends on the service (the service depends on the role's main policy)."""
    cluster = [
        "arn:",
        {"Ref": "AWS::Partition"},
        ":ecs:us-east-1:",
        {"Ref": "AWS::AccountId"},
        f":cluster/longhaul-{any_app.env}",
    ]
    tasks = [*cluster[:4], f":task/longhaul-{any_app.env}/*"]
    for name, spec in any_app.specs.items():
        if spec.queue is None:
            continue
        _, task = one(
            {
                k: v
                for k, v in any_app.resources(name, "AWS::ECS::TaskDefinition").items()
                if k.startswith("Worker")
            }
        )
        role = role_of_task(task)
        template = any_app.template(name)
        template.has_resource_properties(
            "AWS::IAM::Policy",
            {
                "Roles": [ref(role)],
                "PolicyDocument": {
                    "Statement": Match.array_with(
                        [
                            {
                                "Action": "ecs:DescribeTasks",
                                "Condition": {
                                    "ArnEquals": {"ecs:cluster": {"Fn::Join": ["", cluster]}}
                                },
                                "Effect": "Allow",
                                "Resource": {"Fn::Join": ["", tasks]},
                            }
                        ]
                    )
                },
            },
        )
        service = _worker_service(any_app, name)
        policy_id, policy = one(
            {
                k: v
                for k, v in any_app.resources(name, "AWS::IAM::Policy").items()
                if k.startswith("WorkerDeploymentWatchPolicy")
            }
        )
        assert policy["Properties"]["Roles"] == [ref(role)]
        assert policy["Properties"]["PolicyDocument"]["Statement"] == [
            {"Action": "ecs:DescribeServices", "Effect": "Allow", "Resource": ref(service)}
        ]
        # Only this policy names the service: the service waits for the role's main policy.
        depends = any_app.resources(name, "AWS::ECS::Service")[service].get("DependsOn", [])
        assert policy_id not in depends


def test_no_policy_in_any_stack_grants_a_wildcard_action(any_app: Synthesized) -> None:
    for name in any_app.templates:
        for resource in any_app.raw(name)["Resources"].values():
            documents = []
            if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
                documents.append(resource["Properties"]["PolicyDocument"])
            if resource["Type"] == "AWS::IAM::Role":
                documents += [
                    p["PolicyDocument"] for p in resource["Properties"].get("Policies", [])
                ]
            for document in documents:
                for statement in document["Statement"]:
                    actions = statement["Action"]
                    for action in [actions] if isinstance(actions, str) else actions:
                        assert "*" not in action, (name, statement)


def test_execution_roles_pull_the_image_write_logs_and_read_the_declared_secrets(
    fixture_app: Synthesized,
) -> None:
    for name in fixture_app.services:
        secrets = {f"<{s}>" for s in fixture_app.resources(name, "AWS::SecretsManager::Secret")}
        reads = (
            ("secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret") if secrets else ()
        )
        for task in _tasks(fixture_app, name).values():
            granted = policy_actions(fixture_app.raw(name), role_of_task(task, "ExecutionRoleArn"))
            assert set(granted) == {
                "ecr:BatchCheckLayerAvailability",
                "ecr:GetDownloadUrlForLayer",
                "ecr:BatchGetImage",
                "ecr:GetAuthorizationToken",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
                *reads,
            }
            assert granted["ecr:GetAuthorizationToken"] == {"*"}
            if secrets:
                assert granted["secretsmanager:GetSecretValue"] == secrets
                # ...and decrypts them only through Secrets Manager, by the key's policy
                role = role_of_task(task, "ExecutionRoleArn")
                (key,) = fixture_app.resources(name, "AWS::KMS::Key").values()
                assert {
                    "Action": "kms:Decrypt",
                    "Condition": {
                        "StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}
                    },
                    "Effect": "Allow",
                    "Principal": {"AWS": {"Fn::GetAtt": [role, "Arn"]}},
                    "Resource": "*",
                } in key["Properties"]["KeyPolicy"]["Statement"]


def test_secrets_reach_tasks_as_references_and_task_secrets_never_as_values(
    fixture_app: Synthesized,
) -> None:
    spec = fixture_app.specs["echo"]
    (secret_id,) = fixture_app.resources("echo", "AWS::SecretsManager::Secret")
    for task in _tasks(fixture_app, "echo").values():
        assert container(task)["Secrets"] == [
            {"Name": "LONGHAUL_SECRET_API_KEY", "ValueFrom": {"Ref": secret_id}}
        ]
        ids = environment(task)["LONGHAUL_SECRET_IDS"]
        # {"api-key": "<the secret's ARN>"}: the kit fetches the value itself at start
        assert ids == {"Fn::Join": ["", ['{"api-key":"', {"Ref": secret_id}, '"}']]}
        assert [s.name for s in spec.secrets] == ["api-key"]


def _kit_variables() -> set[str]:
    names: set[str] = set()
    for field in KitSettings.model_fields.values():
        alias = field.validation_alias or field.alias
        if isinstance(alias, AliasChoices):
            names.update(str(choice) for choice in alias.choices)
        elif isinstance(alias, str):
            names.add(alias)
    return names


@pytest.mark.parametrize("role", ["api", "worker", "gpu-worker"])
def test_task_environment_is_what_the_kit_reads_and_is_complete(
    any_app: Synthesized, role: str
) -> None:
    # and what the runtime reads: OpenTelemetry's resource, Python's tempfile (the scratch);
    # the GPU worker's code puts its tensors on LONGHAUL_DEVICE
    # and where the SDK sends spans: the collector beside the service
    known = _kit_variables() | {
        "OTEL_SERVICE_NAME",
        "OTEL_RESOURCE_ATTRIBUTES",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "TMPDIR",
    }
    if role == "gpu-worker":
        known |= set(DEVICE_VARIABLE)
    for name, spec in any_app.specs.items():
        task = _tasks(any_app, name).get(role)
        if task is None:
            continue
        variables = environment(task)
        assert set(variables) <= known, set(variables) - known
        # Names and ARNs resolve at deploy time; stand-ins show the kit accepts the set.
        values = {
            key: value if isinstance(value, str) else f"resolved-{key.lower()}"
            for key, value in variables.items()
        }
        if spec.secrets:
            values["LONGHAUL_SECRET_IDS"] = json.dumps(
                {s.name: f"arn-{s.name}" for s in spec.secrets}
            )
        settings = KitSettings.model_validate(values)
        settings.check_against(spec, "api" if role == "api" else "worker")
        assert (settings.host, settings.port, settings.env) == ("0.0.0.0", 8000, any_app.env)
