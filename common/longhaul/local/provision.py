"""The local provisioner: creates on moto exactly what the service specs declare.

Every step looks before it creates, so running it twice changes nothing; the report says
what was created and what already existed.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any, Literal

from botocore.exceptions import ClientError

from longhaul.aws.clients import AwsClients
from longhaul.flags import flags_parameter_name
from longhaul.jobs.admin import ADMIN_GROUP
from longhaul.local import platform
from longhaul.local.platform import LocalAuth
from longhaul.local.token import DEV_ADMIN_USER
from longhaul.smoke.auth import SMOKE_USER, smoke_user_secret
from longhaul.spec import ResourceNames, ServiceSpec, TableSpec, platform_bus_name

__all__ = ["Action", "Provisioned", "provision"]

log = logging.getLogger(__name__)

Action = tuple[str, str, Literal["created", "exists"]]


@dataclass
class Provisioned:
    """What the provisioner did, and the auth ids the services need."""

    auth: LocalAuth | None = None
    actions: list[Action] = field(default_factory=list)

    def note(self, kind: str, name: str, created: bool) -> None:
        """Record one resource."""
        self.actions.append((kind, name, "created" if created else "exists"))

    @property
    def created(self) -> list[Action]:
        """The resources this run created."""
        return [a for a in self.actions if a[2] == "created"]


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


async def provision(
    aws: AwsClients, specs: list[ServiceSpec], *, env: str, region: str
) -> Provisioned:
    """Create the platform bus, every service's resources, and the user pool with the dev
    user, the dev admin (in the `admin` group) and the smoke user."""
    report = Provisioned()
    events = await aws.get("events")
    bus = platform_bus_name(env)
    try:
        await events.describe_event_bus(Name=bus)
        report.note("bus", bus, created=False)
    except events.exceptions.ResourceNotFoundException:
        await events.create_event_bus(Name=bus)
        report.note("bus", bus, created=True)
    for spec in specs:
        await _service(
            aws, spec, ResourceNames.of(spec, env), env=env, region=region, report=report
        )
    report.auth = await _auth(aws, env, region, report)
    return report


async def _service(
    aws: AwsClients,
    spec: ServiceSpec,
    names: ResourceNames,
    *,
    env: str,
    region: str,
    report: Provisioned,
) -> None:
    if spec.queue and names.queue and names.dlq:
        dlq_arn = await _queue(
            aws, names.dlq, {"MessageRetentionPeriod": str(spec.queue.dlq_retention_s)}, report
        )
        queue_arn = await _queue(
            aws,
            names.queue,
            {
                "VisibilityTimeout": str(spec.queue.visibility_timeout_s),
                "MessageRetentionPeriod": str(spec.queue.retention_s),
                "RedrivePolicy": json.dumps(
                    {
                        "deadLetterTargetArn": dlq_arn,
                        "maxReceiveCount": spec.queue.max_receive_count,
                    }
                ),
            },
            report,
        )
        events = await aws.get("events")
        for rule in spec.rules:
            name = names.rules[rule.name]
            bus = names.bus if rule.bus == "platform" else "default"
            try:
                await events.describe_rule(Name=name, EventBusName=bus)
                created = False
            except events.exceptions.ResourceNotFoundException:
                created = True
            await events.put_rule(
                Name=name,
                EventBusName=bus,
                EventPattern=json.dumps(rule.pattern_for(names.bucket)),
            )
            await events.put_targets(
                Rule=name, EventBusName=bus, Targets=[{"Id": "queue", "Arn": queue_arn}]
            )
            report.note("rule", f"{bus}/{name}", created)
    if spec.table and names.table:
        await _table(aws, names.table, spec.table, report)
    if spec.bucket and names.bucket:
        s3 = await aws.get("s3")
        try:
            await s3.head_bucket(Bucket=names.bucket)
            report.note("bucket", names.bucket, created=False)
        except ClientError:
            placement: dict[str, Any] = {}
            if region != "us-east-1":  # S3 refuses a constraint naming us-east-1
                placement["CreateBucketConfiguration"] = {"LocationConstraint": region}
            await s3.create_bucket(Bucket=names.bucket, **placement)
            report.note("bucket", names.bucket, created=True)
        if spec.bucket.eventbridge_notifications:
            await s3.put_bucket_notification_configuration(
                Bucket=names.bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
            )
    for secret_name in names.secrets.values():
        await _secret(aws, secret_name, secrets.token_urlsafe(32), report)
    await _flags(aws, flags_parameter_name(env, spec.name), report)


async def _queue(
    aws: AwsClients, name: str, attributes: dict[str, str], report: Provisioned
) -> str:
    sqs = await aws.get("sqs")
    try:
        url = (await sqs.get_queue_url(QueueName=name))["QueueUrl"]
        await sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)  # converge
        report.note("queue", name, created=False)
    except sqs.exceptions.QueueDoesNotExist:
        url = (await sqs.create_queue(QueueName=name, Attributes=attributes))["QueueUrl"]
        report.note("queue", name, created=True)
    response = await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return str(response["Attributes"]["QueueArn"])


async def _table(aws: AwsClients, name: str, table: TableSpec, report: Provisioned) -> None:
    dynamodb = await aws.get("dynamodb")
    try:
        await dynamodb.describe_table(TableName=name)
        report.note("table", name, created=False)
        return
    except dynamodb.exceptions.ResourceNotFoundException:
        pass
    keys = {table.pk, table.sk} | {g.pk for g in table.gsis} | {g.sk for g in table.gsis if g.sk}
    arguments: dict[str, Any] = {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [
            {"AttributeName": table.pk, "KeyType": "HASH"},
            {"AttributeName": table.sk, "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [{"AttributeName": k, "AttributeType": "S"} for k in sorted(keys)],
    }
    if table.gsis:
        arguments["GlobalSecondaryIndexes"] = [
            {
                "IndexName": gsi.name,
                "KeySchema": [{"AttributeName": gsi.pk, "KeyType": "HASH"}]
                + ([{"AttributeName": gsi.sk, "KeyType": "RANGE"}] if gsi.sk else []),
                "Projection": gsi.projection,
            }
            for gsi in table.gsis
        ]
    await dynamodb.create_table(**arguments)
    if table.ttl_attribute:
        await dynamodb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute},
        )
    report.note("table", name, created=True)


async def _secret(aws: AwsClients, name: str, value: str, report: Provisioned) -> bool:
    client = await aws.get("secretsmanager")
    try:
        await client.describe_secret(SecretId=name)
        report.note("secret", name, created=False)
        return False
    except client.exceptions.ResourceNotFoundException:
        await client.create_secret(Name=name, SecretString=value)
        report.note("secret", name, created=True)
        return True


async def _flags(aws: AwsClients, name: str, report: Provisioned) -> None:
    """The service's feature flags parameter, created empty (every flag at its default);
    an existing one is left as it is, values set with `longhaul flags set` included."""
    ssm = await aws.get("ssm")
    try:
        await ssm.get_parameter(Name=name)
        report.note("parameter", name, created=False)
    except ssm.exceptions.ParameterNotFound:
        await ssm.put_parameter(
            Name=name,
            Type="String",
            Value="{}",
            Description="Feature flags (JSON object); docs/flags.md",
        )
        report.note("parameter", name, created=True)


async def _auth(aws: AwsClients, env: str, region: str, report: Provisioned) -> LocalAuth:
    cognito = await aws.get("cognito-idp")
    pool_name = platform.pool_name(env)
    pool_id = await platform.find_user_pool(cognito, pool_name)
    report.note("user-pool", pool_name, created=pool_id is None)
    if pool_id is None:
        created = await cognito.create_user_pool(PoolName=pool_name, **platform.POOL_PARAMETERS)
        pool_id = created["UserPool"]["Id"]

    client_name = platform.client_name(env)
    clients = (await cognito.list_user_pool_clients(UserPoolId=pool_id, MaxResults=60))[
        "UserPoolClients"
    ]
    client_id = next((c["ClientId"] for c in clients if c["ClientName"] == client_name), None)
    report.note("app-client", client_name, created=client_id is None)
    if client_id is None:
        created = await cognito.create_user_pool_client(
            UserPoolId=pool_id, ClientName=client_name, **platform.CLIENT_PARAMETERS
        )
        client_id = created["UserPoolClient"]["ClientId"]

    try:
        await cognito.admin_get_user(UserPoolId=pool_id, Username=platform.DEV_USER)
        report.note("user", platform.DEV_USER, created=False)
    except cognito.exceptions.UserNotFoundException:
        await cognito.admin_create_user(
            UserPoolId=pool_id, Username=platform.DEV_USER, MessageAction="SUPPRESS"
        )
        report.note("user", platform.DEV_USER, created=True)
    # The dev user's password is generated, never written in code, and kept in Secrets
    # Manager where `longhaul token` reads it; set only when the secret is first created.
    password = "Lh1!" + secrets.token_urlsafe(24)
    if await _secret(aws, platform.dev_password_secret(env), password, report):
        await cognito.admin_set_user_password(
            UserPoolId=pool_id, Username=platform.DEV_USER, Password=password, Permanent=True
        )
    await _dev_admin(aws, cognito, pool_id, env, report)
    await _smoke_user(aws, cognito, pool_id, env, report)
    return LocalAuth(pool_id=pool_id, client_id=client_id, region=region)


async def _dev_admin(
    aws: AwsClients, cognito: Any, pool_id: str, env: str, report: Provisioned
) -> None:
    """The Cognito group `admin` (the admin routes and the console's admin view) and the
    local admin user in it, `dev-admin`, who signs in with the dev user's password. The
    dev user stays out of the group: the two show what an admin sees and a caller does not."""
    try:
        await cognito.get_group(GroupName=ADMIN_GROUP, UserPoolId=pool_id)
        report.note("group", ADMIN_GROUP, created=False)
    except cognito.exceptions.ResourceNotFoundException:
        await cognito.create_group(
            GroupName=ADMIN_GROUP,
            UserPoolId=pool_id,
            Description="Sees every owner's jobs and the DLQs, and redrives them",
        )
        report.note("group", ADMIN_GROUP, created=True)
    try:
        await cognito.admin_get_user(UserPoolId=pool_id, Username=DEV_ADMIN_USER)
        report.note("user", DEV_ADMIN_USER, created=False)
    except cognito.exceptions.UserNotFoundException:
        await cognito.admin_create_user(
            UserPoolId=pool_id, Username=DEV_ADMIN_USER, MessageAction="SUPPRESS"
        )
        secret = await (await aws.get("secretsmanager")).get_secret_value(
            SecretId=platform.dev_password_secret(env)
        )
        await cognito.admin_set_user_password(
            UserPoolId=pool_id,
            Username=DEV_ADMIN_USER,
            Password=secret["SecretString"],
            Permanent=True,
        )
        report.note("user", DEV_ADMIN_USER, created=True)
    await cognito.admin_add_user_to_group(
        UserPoolId=pool_id, Username=DEV_ADMIN_USER, GroupName=ADMIN_GROUP
    )


async def _smoke_user(
    aws: AwsClients, cognito: Any, pool_id: str, env: str, report: Provisioned
) -> None:
    """The user `longhaul smoke` signs in as, its credentials in a secret of the shape the
    deployed environments use (docs/pipeline.md); the local pool asks for no MFA."""
    try:
        await cognito.admin_get_user(UserPoolId=pool_id, Username=SMOKE_USER)
        report.note("user", SMOKE_USER, created=False)
    except cognito.exceptions.UserNotFoundException:
        await cognito.admin_create_user(
            UserPoolId=pool_id, Username=SMOKE_USER, MessageAction="SUPPRESS"
        )
        report.note("user", SMOKE_USER, created=True)
    password = "Lh1!" + secrets.token_urlsafe(24)
    credentials = json.dumps({"username": SMOKE_USER, "password": password})
    if await _secret(aws, smoke_user_secret(env), credentials, report):
        await cognito.admin_set_user_password(
            UserPoolId=pool_id, Username=SMOKE_USER, Password=password, Permanent=True
        )
