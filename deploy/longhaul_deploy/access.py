"""Least privilege: the exact actions each role's task role is granted on the service's own
resources, and the CDK grants that give them.

Every action is one the kit or the service calls (no wildcards), on one resource of the
service's own. The only `*` in a resource stands for a bucket's objects and for the
cluster's tasks, whose names are not known in advance; each is acknowledged to cdk-nag
beside its grant. The worker service's own ARN exists only once the service does, so its
grant (`grant_worker_service`) is made by the worker construct, in a policy of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from longhaul_deploy._utils import acknowledge, nag_resource
from longhaul_deploy.service_task import Role

__all__ = ["ACTIONS", "Resources", "grant", "grant_worker_service"]

ACTIONS: dict[str, dict[Role, tuple[str, ...]]] = {
    "queue": {
        # submit a job: look up the queue, send its message; the admin routes find the DLQ
        # in its redrive policy and redrive into it (longhaul.jobs.admin)
        "api": ("sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage"),
        # consume, heartbeat (visibility), finish, park and fan out (send), find the DLQ
        "worker": (
            "sqs:ChangeMessageVisibility",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:GetQueueUrl",
            "sqs:ReceiveMessage",
            "sqs:SendMessage",
        ),
    },
    # a job out of attempts copies its own message to the DLQ (worker); an admin looks at
    # it (receive with a zero visibility timeout, counts) and redrives it (receive, show
    # again what is left, delete what moved) through the API (longhaul.jobs.admin)
    "dead_letter_queue": {
        "api": (
            "sqs:ChangeMessageVisibility",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:GetQueueUrl",
            "sqs:ReceiveMessage",
        ),
        "worker": ("sqs:GetQueueUrl", "sqs:SendMessage"),
    },
    # jobs: get (one, or a listing's rows in batches), query, conditional put/update (also
    # inside transactions); readiness: describe
    "table": {
        role: (
            "dynamodb:BatchGetItem",
            "dynamodb:ConditionCheckItem",
            "dynamodb:DescribeTable",
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:Query",
            "dynamodb:UpdateItem",
        )
        for role in ("api", "worker")
    },
    # a caller's jobs newest first (GSI1), jobs by state (GSI2), and any index a spec adds
    "table_indexes": {role: ("dynamodb:Query",) for role in ("api", "worker")},
    "bucket_objects": {
        # presigned uploads (single and multipart) and downloads, checkpoints, heads
        "api": ("s3:GetObject", "s3:PutObject"),
        # inputs, outputs and scratch: read, write, clean up, abandon a multipart upload
        "worker": (
            "s3:AbortMultipartUpload",
            "s3:DeleteObject",
            "s3:GetObject",
            "s3:PutObject",
        ),
    },
    # readiness (HeadBucket) and listing the keys under a prefix
    "bucket": {role: ("s3:ListBucket",) for role in ("api", "worker")},
    # SQS, S3 and DynamoDB encrypt and decrypt with the service key on the caller's behalf
    "key": {
        role: ("kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey")
        for role in ("api", "worker")
    },
    # facts on the platform bus; readiness describes the bus
    "bus": {role: ("events:DescribeEventBus", "events:PutEvents") for role in ("api", "worker")},
    # read at start by the kit (LONGHAUL_SECRET_IDS)
    "secrets": {
        role: ("secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue")
        for role in ("api", "worker")
    },
    # scale-in protection while a job runs, through the ECS agent
    "cluster_tasks": {"api": (), "worker": ("ecs:UpdateTaskProtection",)},
    # the deployment watch (longhaul.jobs.drain): which deployment started this task...
    "cluster_tasks_described": {"api": (), "worker": ("ecs:DescribeTasks",)},
    # ...and whether it is still the worker service's PRIMARY one
    "worker_service": {"api": (), "worker": ("ecs:DescribeServices",)},
}


@dataclass(frozen=True, kw_only=True)
class Resources:
    """What one service has: its own resources, and the platform's bus and cluster name."""

    key: kms.IKey
    bus: events.IEventBus
    cluster_name: str
    queue: sqs.IQueue | None = None
    dead_letter_queue: sqs.IQueue | None = None
    table: dynamodb.ITable | None = None
    index_names: tuple[str, ...] = ()
    bucket: s3.IBucket | None = None
    secrets: tuple[secretsmanager.ISecret, ...] = ()


def grant(task_role: iam.IRole, *, role: Role, resources: Resources) -> None:
    """Grant `role`'s actions (ACTIONS) on `resources` to `task_role`, through CDK grants."""

    def actions(kind: str) -> list[str]:
        return list(ACTIONS[kind][role])

    events.EventBusGrants.from_event_bus(resources.bus).actions(task_role, actions("bus"))
    if resources.queue is not None and actions("queue"):
        resources.queue.grant(task_role, *actions("queue"))
    if resources.dead_letter_queue is not None and actions("dead_letter_queue"):
        resources.dead_letter_queue.grant(task_role, *actions("dead_letter_queue"))
    if resources.table is not None:
        # Named indexes, not the `index/*` of `table.grant`: the spec says which exist.
        table_arn = resources.table.table_arn
        iam.Grant.add_to_principal(
            grantee=task_role, actions=actions("table"), resource_arns=[table_arn]
        )
        if resources.index_names:
            iam.Grant.add_to_principal(
                grantee=task_role,
                actions=actions("table_indexes"),
                resource_arns=[f"{table_arn}/index/{name}" for name in resources.index_names],
            )
    if resources.bucket is not None:
        bucket_grants = s3.BucketGrants.from_bucket(resources.bucket)
        bucket_grants.actions_on_object_keys(task_role, None, *actions("bucket_objects"))
        bucket_grants.actions_on_bucket_and_object_keys(task_role, None, *actions("bucket"))
        acknowledge(
            task_role,
            "AwsSolutions-IAM5",
            "The objects of the service's own bucket: their keys are made at run time "
            "(uploads, outputs, checkpoints), so no narrower resource can name them.",
            findings=(nag_resource(task_role, resources.bucket.arn_for_objects("*")),),
        )
    if resources.queue or resources.table or resources.bucket or resources.secrets:
        resources.key.grant(task_role, *actions("key"))
    if resources.secrets:
        iam.Grant.add_to_principal(
            grantee=task_role,
            actions=actions("secrets"),
            resource_arns=[secret.secret_arn for secret in resources.secrets],
        )
    if actions("cluster_tasks") or actions("cluster_tasks_described"):
        stack = Stack.of(task_role)
        tasks = stack.format_arn(
            service="ecs",
            resource="task",
            resource_name=f"{resources.cluster_name}/*",
            arn_format=ArnFormat.SLASH_RESOURCE_NAME,
        )
        if actions("cluster_tasks"):
            iam.Grant.add_to_principal(
                grantee=task_role, actions=actions("cluster_tasks"), resource_arns=[tasks]
            )
        if actions("cluster_tasks_described"):
            # DescribeTasks also takes the `ecs:cluster` condition key: this cluster only.
            cluster = stack.format_arn(
                service="ecs", resource="cluster", resource_name=resources.cluster_name
            )
            task_role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=actions("cluster_tasks_described"),
                    resources=[tasks],
                    conditions={"ArnEquals": {"ecs:cluster": cluster}},
                )
            )
        acknowledge(
            task_role,
            "AwsSolutions-IAM5",
            "Task scale-in protection is asked for, and the deployment that started a task is "
            "described, by the task itself, and a task's ARN is known only once it runs; both "
            "grants are bounded to the platform cluster's tasks.",
            findings=(nag_resource(task_role, tasks),),
        )


def grant_worker_service(
    scope: Construct, task_role: iam.IRole, *, service: ecs.IBaseService
) -> iam.Policy:
    """Let the worker's tasks describe their own service (the deployment watch) and nothing
    else: its ARN, in a policy of its own that CloudFormation creates after the service, so
    that the task role's main policy never waits for the service."""
    policy = iam.Policy(
        scope,
        "DeploymentWatchPolicy",
        statements=[
            iam.PolicyStatement(
                actions=list(ACTIONS["worker_service"]["worker"]),
                resources=[service.service_arn],
            )
        ],
    )
    policy.attach_to_role(task_role)
    return policy
