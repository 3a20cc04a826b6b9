"""The local emulator: conditional writes atomic under load, faults that reach aioboto3 as
AWS sends them, long polls that block nobody, and SQS's cap on a message's visibility.

LONGHAUL_RACE_TRIALS and LONGHAUL_RACE_TRANSACTION_TRIALS set how many races of 16 writers
the atomicity tests run (defaults 150 and 50; more for a soak). With moto's lock taken out
of the emulator, 8 of 60 update races and 5 of 20 transaction races had two winners (a
loaded 2-core machine, with the tests' CPU hogs): at those rates the defaults let such an
emulator pass with odds under one in a million."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aioboto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionError, HTTPClientError, ReadTimeoutError

from longhaul.aws.clients import AwsClients, client_config
from tests.conftest import REGION
from tests.support.faults import ControlError, Faults
from tests.support.moto import PK_SK_TABLE, MotoServer

pytestmark = pytest.mark.integration

TRIALS = int(os.environ.get("LONGHAUL_RACE_TRIALS", "150"))
# Each transaction deep-copies its table in moto: slower per call.
TRANSACTION_TRIALS = int(os.environ.get("LONGHAUL_RACE_TRANSACTION_TRIALS", "50"))
CONTENDERS = 16

# The job store's start (longhaul.jobs.store): one conditional write that takes the item
# and stamps its lease, state index and counters. Its width matters: the wider the update,
# the wider the window in which an unserialized moto lets a second writer in.
CLAIM = {
    "UpdateExpression": (
        "SET #state = :running, updated_at = :now, GSI2PK = :index, GSI2SK = :sort, "
        "lease_owner = :me, lease_expires = :expires, message_id = :message, "
        "started_at = if_not_exists(started_at, :now), runs = if_not_exists(runs, :zero) + :one"
    ),
    "ConditionExpression": "#state = :queued",
    "ExpressionAttributeNames": {"#state": "state"},
    "ReturnValues": "ALL_NEW",
}


def _claim_values(trial: int, contender: int) -> dict[str, Any]:
    return {
        ":running": {"S": "running"},
        ":queued": {"S": "queued"},
        ":now": {"S": "2026-01-01T00:00:00Z"},
        ":index": {"S": "STATE#running"},
        ":sort": {"S": f"2026-01-01T00:00:00Z#{trial}"},
        ":me": {"S": f"w{contender}"},
        ":expires": {"N": "1767225660.5"},
        ":message": {"S": f"m{contender}"},
        ":zero": {"N": "0"},
        ":one": {"N": "1"},
    }


@pytest.fixture
def faults(moto: MotoServer) -> Iterator[Faults]:
    """The emulator's fault rules, cleared (and the visibility cap restored) around the test."""
    moto.faults.clear()
    yield moto.faults
    moto.faults.clear()
    moto.faults.set_visibility_cap(None)


@pytest.fixture
def cpu_hogs() -> Iterator[None]:
    """Two CPU-bound processes beside the emulator, so its threads are preempted mid-call."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    yield
    for hog in hogs:
        hog.kill()
        hog.wait()


def _clients(**options: Any) -> AwsClients:
    """The kit's clients with some options changed (the `moto` fixture sets the endpoint)."""
    return AwsClients(REGION, config=client_config().merge(Config(**options)))


@pytest.fixture
async def racer(moto: MotoServer) -> AsyncIterator[Any]:
    """A bare aioboto3 DynamoDB client: no tracing hooks, so a trial's calls leave together;
    a pool as wide as the contenders, so all are in flight at once; no retries."""
    config = Config(
        max_pool_connections=4 * CONTENDERS, retries={"mode": "standard", "max_attempts": 0}
    )
    session = aioboto3.Session(region_name=REGION)
    async with session.client("dynamodb", endpoint_url=moto.endpoint, config=config) as db:
        yield db


@pytest.fixture
async def bare(moto: MotoServer) -> AsyncIterator[AwsClients]:
    """The kit's clients without retries: one call, one request."""
    clients = _clients(retries={"mode": "standard", "max_attempts": 0})
    yield clients
    await clients.close()


@pytest.fixture
async def once(moto: MotoServer) -> AsyncIterator[AwsClients]:
    """Clients that retry once (botocore's `max_attempts` counts retries), so that a
    refused call costs one backoff, not four."""
    clients = _clients(retries={"mode": "standard", "max_attempts": 1})
    yield clients
    await clients.close()


async def _table(db: Any) -> str:
    name = f"emulator-{uuid.uuid4().hex[:8]}"
    await db.create_table(
        TableName=name,
        **PK_SK_TABLE,
    )
    return name


# -- atomicity -------------------------------------------------------------------------


@pytest.mark.timeout(600)
@pytest.mark.usefixtures("cpu_hogs")
async def test_concurrent_conditional_updates_have_exactly_one_winner(racer: Any) -> None:
    db = racer
    table = await _table(db)

    async def claim(trial: int, key: dict[str, Any], contender: int) -> bool:
        try:
            await db.update_item(
                TableName=table,
                Key=key,
                ExpressionAttributeValues=_claim_values(trial, contender),
                **CLAIM,
            )
        except db.exceptions.ConditionalCheckFailedException:
            return False
        return True

    wrong: list[str] = []
    for trial in range(TRIALS):
        key = {"PK": {"S": f"JOB#{trial}"}, "SK": {"S": "META"}}
        await db.put_item(
            TableName=table, Item={**key, "state": {"S": "queued"}, "runs": {"N": "0"}}
        )
        won = await asyncio.gather(*(claim(trial, key, c) for c in range(CONTENDERS)))
        winners = [c for c, w in enumerate(won) if w]
        item = (await db.get_item(TableName=table, Key=key, ConsistentRead=True))["Item"]
        if winners != [int(item["lease_owner"]["S"][1:])] or item["runs"]["N"] != "1":
            wrong.append(f"trial {trial}: winners {winners}, item {item}")
    assert not wrong, f"{len(wrong)} of {TRIALS} trials without exactly one winner: {wrong[:3]}"


@pytest.mark.timeout(600)
@pytest.mark.usefixtures("cpu_hogs")
async def test_concurrent_transactions_claiming_one_item_have_exactly_one_winner(
    racer: Any,
) -> None:
    db = racer
    table = await _table(db)

    async def claim(trial: int, key: dict[str, Any], contender: int) -> bool:
        update = {"TableName": table, "Key": key, **CLAIM}
        update.pop("ReturnValues")  # a transaction returns no item
        update["ExpressionAttributeValues"] = _claim_values(trial, contender)
        record = {"PK": key["PK"], "SK": {"S": f"CLAIM#{contender}"}}
        try:
            await db.transact_write_items(
                TransactItems=[
                    {"Update": update},
                    {"Put": {"TableName": table, "Item": record}},
                ]
            )
        except db.exceptions.TransactionCanceledException:
            return False
        return True

    wrong: list[str] = []
    for trial in range(TRANSACTION_TRIALS):
        key = {"PK": {"S": f"JOB#{trial}"}, "SK": {"S": "META"}}
        await db.put_item(
            TableName=table, Item={**key, "state": {"S": "queued"}, "runs": {"N": "0"}}
        )
        won = await asyncio.gather(*(claim(trial, key, c) for c in range(CONTENDERS)))
        winners = [c for c, w in enumerate(won) if w]
        rows = (
            await db.query(
                TableName=table,
                KeyConditionExpression="PK = :pk",
                ExpressionAttributeValues={":pk": key["PK"]},
                ConsistentRead=True,
            )
        )["Items"]
        claims = sorted(
            int(r["SK"]["S"].removeprefix("CLAIM#")) for r in rows if r["SK"]["S"] != "META"
        )
        if len(winners) != 1 or claims != winners:
            wrong.append(f"trial {trial}: winners {winners}, claim rows {claims}")
        for row in rows:  # keep the table small: moto copies it whole for each transaction
            await db.delete_item(TableName=table, Key={"PK": row["PK"], "SK": row["SK"]})
    assert not wrong, (
        f"{len(wrong)} of {TRANSACTION_TRIALS} trials without exactly one winner: {wrong[:3]}"
    )


# -- faults ----------------------------------------------------------------------------


async def _target(clients: AwsClients, service: str) -> tuple[str, Callable[[], Awaitable[Any]]]:
    """A new resource of `service` (its name, for a rule's `match`) and one call on it."""
    name = f"emulator-{uuid.uuid4().hex[:8]}"
    client = await clients.get(service)
    if service == "dynamodb":
        table = await _table(client)
        key = {"PK": {"S": "a"}, "SK": {"S": "b"}}
        return table, lambda: client.get_item(TableName=table, Key=key)
    if service == "sqs":
        url = (await client.create_queue(QueueName=name))["QueueUrl"]
        return name, lambda: client.send_message(QueueUrl=url, MessageBody="x")
    if service == "events":
        await client.create_event_bus(Name=name)
        entry = {"EventBusName": name, "Source": "test", "DetailType": "t", "Detail": "{}"}
        return name, lambda: client.put_events(Entries=[entry])
    assert service == "s3"
    await client.create_bucket(Bucket=name)
    return name, lambda: client.put_object(Bucket=name, Key="k", Body=b"x")


OPERATIONS = {"dynamodb": "GetItem", "sqs": "SendMessage", "events": "PutEvents", "s3": "PutObject"}


@pytest.mark.parametrize(
    ("service", "fault", "status", "code"),
    [
        ("dynamodb", "throttle", 400, "ProvisionedThroughputExceededException"),
        ("sqs", "throttle", 403, "RequestThrottled"),
        ("events", "throttle", 400, "ThrottlingException"),
        ("s3", "throttle", 503, "SlowDown"),
        ("dynamodb", "error", 500, "InternalServerError"),
        ("sqs", "error", 500, "InternalFailure"),
        ("events", "error", 500, "InternalException"),
        ("s3", "error", 500, "InternalError"),
        ("dynamodb", "error", 503, "ServiceUnavailable"),
        ("sqs", "error", 503, "ServiceUnavailable"),
        ("events", "error", 503, "ServiceUnavailable"),
        ("s3", "error", 503, "ServiceUnavailable"),
    ],
)
async def test_fault_reaches_the_client_with_the_services_code_and_is_retried(
    once: AwsClients, faults: Faults, service: str, fault: Any, status: int, code: str
) -> None:
    name, call = await _target(once, service)
    rule = faults.inject(
        service,
        fault,
        operation=OPERATIONS[service],
        match=name,
        status=status if fault == "error" else None,
    )

    with pytest.raises(ClientError) as caught:
        await call()

    error = caught.value.response
    assert error["Error"]["Code"] == code
    assert error["ResponseMetadata"]["HTTPStatusCode"] == status
    assert error["ResponseMetadata"]["RetryAttempts"] == 1, "botocore retries it"
    assert faults.fired(rule) == 2
    faults.clear()
    await call()


@pytest.mark.parametrize(("service", "fault"), [("dynamodb", "throttle"), ("sqs", "error")])
async def test_the_kits_clients_retry_through_a_passing_fault(
    aws: AwsClients, faults: Faults, service: str, fault: Any
) -> None:
    name, call = await _target(aws, service)
    rule = faults.inject(service, fault, operation=OPERATIONS[service], match=name, times=2)

    response = await call()

    assert response["ResponseMetadata"]["RetryAttempts"] == 2
    assert faults.rule(rule)["fired"] == 2
    assert faults.rule(rule)["matched"] == 3


async def test_a_rule_fires_only_for_its_match_after_its_first_calls_and_up_to_its_times(
    bare: AwsClients, faults: Faults
) -> None:
    target, call = await _target(bare, "dynamodb")
    _, other = await _target(bare, "dynamodb")
    rule = faults.inject(
        "dynamodb", "throttle", operation="GetItem", match=target, after=2, times=1
    )
    never = faults.inject("dynamodb", "throttle", operation="GetItem", match=target, probability=0)

    await call()
    await call()
    with pytest.raises(ClientError):
        await call()
    await call()
    await other()

    assert faults.rule(rule)["matched"] == 4
    assert faults.fired(rule) == 1
    assert faults.rule(never)["matched"] == 3, "a rule sees the calls the rules before it let by"
    assert faults.fired(never) == 0


async def test_latency_delays_the_call_then_lets_it_through(
    aws: AwsClients, faults: Faults
) -> None:
    name, call = await _target(aws, "sqs")
    rule = faults.inject(
        "sqs", "latency", operation="SendMessage", match=name, seconds=1.0, times=1
    )

    started = time.monotonic()
    response = await call()

    assert time.monotonic() - started >= 1.0
    assert response["MessageId"]
    assert faults.fired(rule) == 1


async def test_reset_drops_the_connection_and_botocore_retries_it(
    once: AwsClients, faults: Faults
) -> None:
    name, call = await _target(once, "dynamodb")
    rule = faults.inject("dynamodb", "reset", operation="GetItem", match=name)

    with pytest.raises((ConnectionError, HTTPClientError)):
        await call()

    assert faults.fired(rule) == 2, "a dropped connection is retried"
    faults.clear()
    await call()


def test_reset_is_a_tcp_reset_with_no_response(moto: MotoServer, faults: Faults) -> None:
    faults.inject("dynamodb", "reset", match="reset-me")
    body = b'{"TableName": "reset-me"}'
    request = (
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: DynamoDB_20120810.DescribeTable\r\n"
        b"Content-Type: application/x-amz-json-1.0\r\nContent-Length: %d\r\n\r\n%s"
    ) % (len(body), body)
    with socket.create_connection(("127.0.0.1", moto.port), timeout=10) as sock:
        sock.sendall(request)
        with pytest.raises(ConnectionResetError):
            sock.recv(1024)


async def test_hang_holds_the_call_past_the_clients_timeout_until_cleared(
    faults: Faults,
) -> None:
    clients = _clients(read_timeout=1, retries={"mode": "standard", "max_attempts": 0})
    try:
        name, call = await _target(clients, "sqs")
        faults.inject("sqs", "hang", operation="SendMessage", match=name)

        with pytest.raises(ReadTimeoutError):
            await call()
        assert faults.holding() == 1, "the emulator still holds the call"

        faults.clear()
        deadline = time.monotonic() + 10
        while faults.holding() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert faults.holding() == 0
        assert (await call())["MessageId"]
    finally:
        await clients.close()


def test_a_bad_rule_is_refused(faults: Faults) -> None:
    with pytest.raises(ControlError, match=r"400 .*a latency fault needs `seconds`"):
        faults.inject("dynamodb", "latency")
    assert faults.rules() == []


# -- SQS -------------------------------------------------------------------------------


async def test_a_long_poll_blocks_no_other_call_and_wakes_on_a_send(aws: AwsClients) -> None:
    sqs = await aws.get("sqs")
    db = await aws.get("dynamodb")
    url = (await sqs.create_queue(QueueName=f"emulator-{uuid.uuid4().hex[:8]}"))["QueueUrl"]
    started = time.monotonic()
    poll = asyncio.create_task(sqs.receive_message(QueueUrl=url, WaitTimeSeconds=20))
    await asyncio.sleep(0.5)  # let the poll reach the emulator

    table = await _table(db)
    for n in range(5):
        await db.put_item(TableName=table, Item={"PK": {"S": str(n)}, "SK": {"S": "x"}})
    assert not poll.done(), "other calls were answered while the poll waited"
    await sqs.send_message(QueueUrl=url, MessageBody="wake")

    received = await poll
    assert [m["Body"] for m in received["Messages"]] == ["wake"]
    assert time.monotonic() - started < 15, "the send woke the poll before its 20 s ran out"


async def test_visibility_cannot_be_extended_past_the_cap_from_the_receipt(
    aws: AwsClients, faults: Faults
) -> None:
    faults.set_visibility_cap(5)
    sqs = await aws.get("sqs")
    url = (await sqs.create_queue(QueueName=f"emulator-{uuid.uuid4().hex[:8]}"))["QueueUrl"]
    await sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(n), "MessageBody": str(n)} for n in range(2)]
    )
    messages: list[dict[str, Any]] = []
    while len(messages) < 2:
        received = await sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=2, VisibilityTimeout=2, WaitTimeSeconds=1
        )
        messages += received.get("Messages", [])
    first, second = (m["ReceiptHandle"] for m in messages)

    await sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=first, VisibilityTimeout=3)
    with pytest.raises(ClientError) as caught:
        await sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=first, VisibilityTimeout=10)
    assert caught.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert caught.value.response["Error"]["Message"] == (
        "Value 10 for parameter VisibilityTimeout is invalid. Reason: Total VisibilityTimeout "
        "for the message is beyond the limit [5 seconds]"
    )
    assert caught.value.response["ResponseMetadata"]["RetryAttempts"] == 0

    batch = await sqs.change_message_visibility_batch(
        QueueUrl=url,
        Entries=[
            {"Id": "inside", "ReceiptHandle": first, "VisibilityTimeout": 4},
            {"Id": "past", "ReceiptHandle": second, "VisibilityTimeout": 60},
        ],
    )
    assert [s["Id"] for s in batch["Successful"]] == ["inside"]
    assert [(f["Id"], f["Code"], f["SenderFault"]) for f in batch["Failed"]] == [
        ("past", "InvalidParameterValue", True)
    ]
    assert faults.set_visibility_cap(None) == 43200, "SQS's 12 hours unless a test says otherwise"
