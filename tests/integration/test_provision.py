"""The provisioner creates exactly what the spec declares, once, however often it runs."""

from __future__ import annotations

import json
import uuid
from collections import Counter

from longhaul.aws.clients import AwsClients
from longhaul.local.platform import expected_auth
from longhaul.local.provision import provision
from longhaul.spec import ResourceNames
from tests.conftest import REGION
from tests.support.echo.spec import SPEC as ECHO


async def _inventory(aws: AwsClients, env: str) -> Counter[str]:
    """Every resource of environment `env` that exists on moto, counted by kind/name."""
    prefix = f"longhaul-{env}"
    found: Counter[str] = Counter()
    sqs, events, dynamodb = await aws.get("sqs"), await aws.get("events"), await aws.get("dynamodb")
    s3, secrets, cognito = (
        await aws.get("s3"),
        await aws.get("secretsmanager"),
        await aws.get("cognito-idp"),
    )
    for url in (await sqs.list_queues(QueueNamePrefix=prefix)).get("QueueUrls", []):
        found[f"queue/{url.rsplit('/', 1)[1]}"] += 1
    for bus in (await events.list_event_buses(NamePrefix=prefix))["EventBuses"]:
        found[f"bus/{bus['Name']}"] += 1
    for bus in (prefix, "default"):
        for rule in (await events.list_rules(NamePrefix=prefix, EventBusName=bus))["Rules"]:
            targets = (await events.list_targets_by_rule(Rule=rule["Name"], EventBusName=bus))[
                "Targets"
            ]
            found[f"rule/{bus}/{rule['Name']}->{len(targets)}"] += 1
    # Every page (100 tables each): the shared server holds every test's tables.
    async for page in dynamodb.get_paginator("list_tables").paginate():
        for table in page["TableNames"]:
            if table.startswith(prefix):
                found[f"table/{table}"] += 1
    for bucket in (await s3.list_buckets())["Buckets"]:
        if bucket["Name"].startswith(prefix):
            found[f"bucket/{bucket['Name']}"] += 1
    # Every page: the shared moto server holds every test's environments.
    async for page in secrets.get_paginator("list_secrets").paginate(
        Filters=[{"Key": "name", "Values": [f"longhaul/{env}/"]}]
    ):
        for secret in page["SecretList"]:
            if secret["Name"].startswith(f"longhaul/{env}/"):
                found[f"secret/{secret['Name']}"] += 1
    async for page in cognito.get_paginator("list_user_pools").paginate(MaxResults=60):
        for pool in page["UserPools"]:
            if pool["Name"] == prefix:
                found[f"pool/{pool['Name']}"] += 1
    return found


async def test_provision_twice_creates_each_declared_resource_once(aws: AwsClients) -> None:
    env = "p" + uuid.uuid4().hex[:8]
    first = await provision(aws, [ECHO], env=env, region=REGION)
    second = await provision(aws, [ECHO], env=env, region=REGION)

    assert second.created == [], "the second run must change nothing"
    assert sorted(a[:2] for a in first.actions) == sorted(a[:2] for a in second.actions)
    names = ResourceNames.of(ECHO, env)
    expected = Counter(
        {
            f"queue/{names.queue}": 1,
            f"queue/{names.dlq}": 1,
            f"bus/{names.bus}": 1,
            f"rule/{names.bus}/{names.rules['own-facts']}->1": 1,
            f"rule/default/{names.rules['uploads']}->1": 1,
            f"table/{names.table}": 1,
            f"bucket/{names.bucket}": 1,
            f"secret/{names.secrets['api-key']}": 1,
            f"secret/longhaul/{env}/dev-user": 1,
            f"secret/longhaul/{env}/smoke-user": 1,
            f"pool/longhaul-{env}": 1,
        }
    )
    assert await _inventory(aws, env) == expected


async def test_provisioned_resources_match_the_spec(aws: AwsClients) -> None:
    env = "p" + uuid.uuid4().hex[:8]
    await provision(aws, [ECHO], env=env, region=REGION)
    names = ResourceNames.of(ECHO, env)
    assert ECHO.queue is not None
    assert ECHO.table is not None

    sqs = await aws.get("sqs")
    url = (await sqs.get_queue_url(QueueName=names.queue))["QueueUrl"]
    attributes = (await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"]))[
        "Attributes"
    ]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(f":{names.dlq}")
    assert int(redrive["maxReceiveCount"]) == ECHO.queue.max_receive_count
    assert int(attributes["VisibilityTimeout"]) == ECHO.queue.visibility_timeout_s

    table = (await (await aws.get("dynamodb")).describe_table(TableName=names.table))["Table"]
    assert {g["IndexName"] for g in table["GlobalSecondaryIndexes"]} == {"GSI1", "GSI2", "GSI3"}

    # The bucket's EventBridge notifications and the default-bus rule route uploads to the queue.
    await (await aws.get("s3")).put_object(Bucket=names.bucket, Key="in/clip.mp4", Body=b"x")
    received = await sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5)
    [message] = received["Messages"]
    body = json.loads(message["Body"])
    assert (body["source"], body["detail-type"]) == ("aws.s3", "Object Created")
    assert body["detail"]["object"]["key"] == "in/clip.mp4"

    events = await aws.get("events")
    rule = await events.describe_rule(Name=names.rules["uploads"], EventBusName="default")
    assert json.loads(rule["EventPattern"]) == ECHO.rules[1].pattern


async def test_user_pool_ids_are_the_ones_compose_names(aws: AwsClients) -> None:
    env = "p" + uuid.uuid4().hex[:8]
    report = await provision(aws, [ECHO], env=env, region=REGION)
    assert report.auth == expected_auth(env, REGION)
