"""The emulator's SQS speedups give moto's own answers: the current time, a datetime's
conversion, and the retention check on both sides of a queue's retention period."""

from __future__ import annotations

import datetime
import os
import time

import boto3
import pytest
from moto import mock_aws
from moto.core import utils
from moto.sqs import models

from longhaul.local.emulator import speedups
from tests.support.moto import PK_SK_TABLE


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def test_the_clock_reads_the_time_and_converts_a_datetime_as_moto_does() -> None:
    speedups.install()
    before = utils.unix_time_millis()
    now = models.unix_time_millis()  # type: ignore[attr-defined]
    after = utils.unix_time_millis()
    assert before - 1 <= now <= after + 1
    moment = datetime.datetime(2026, 12, 1, 3, 4, 5, 678_000)
    assert models.unix_time(moment) == utils.unix_time(moment)  # type: ignore[attr-defined]
    assert models.unix_time_millis(moment) == utils.unix_time_millis(moment)  # type: ignore[attr-defined]


def test_a_message_is_received_within_its_retention_and_not_past_it() -> None:
    speedups.install()
    with mock_aws():
        sqs = boto3.client("sqs", region_name=os.environ["AWS_DEFAULT_REGION"])
        url = sqs.create_queue(QueueName="q", Attributes={"MessageRetentionPeriod": "60"})[
            "QueueUrl"
        ]
        sqs.send_message(QueueUrl=url, MessageBody="new")
        sqs.send_message(QueueUrl=url, MessageBody="old")
        # "old" is made 61 s old: past its queue's retention
        backend = models.sqs_backends["123456789012"]["us-east-1"]
        old = next(m for m in backend.get_queue("q")._messages if m.body == "old")
        old.sent_timestamp = int((time.time() - 61) * 1000)  # type: ignore[assignment]
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        assert [m["Body"] for m in got] == ["new"]


def test_a_query_reads_its_partition_only_with_moto_s_conditions_order_and_paging() -> None:
    speedups.install()
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=os.environ["AWS_DEFAULT_REGION"])
        ddb.create_table(
            TableName="t",
            **PK_SK_TABLE,
        )
        for pk in ("a", "b", "c"):
            for n in range(12):
                item = {"PK": {"S": pk}, "SK": {"S": f"{n:02d}"}, "n": {"N": str(n)}}
                ddb.put_item(TableName="t", Item=item)

        def query(more: dict[str, object] | None = None, **extra: object) -> list[tuple[str, str]]:
            values: dict[str, object] = {":pk": {"S": "b"}, ":lo": {"S": "03"}, ":hi": {"S": "09"}}
            found: list[tuple[str, str]] = []
            start = None
            while True:
                page = ddb.query(
                    TableName="t",
                    ExpressionAttributeValues={**values, **(more or {})},
                    KeyConditionExpression="PK = :pk AND SK BETWEEN :lo AND :hi",
                    **({"ExclusiveStartKey": start} if start else {}),
                    **extra,
                )
                found += [(i["PK"]["S"], i["SK"]["S"]) for i in page["Items"]]
                start = page.get("LastEvaluatedKey")
                if not start:
                    return found

        expected = [("b", f"{n:02d}") for n in range(3, 10)]
        assert query() == expected
        assert query(Limit=2) == expected, "paged by two"
        assert query(ScanIndexForward=False) == expected[::-1]
        above = query({":five": {"N": "5"}}, FilterExpression="n > :five", Limit=3)
        assert above == [("b", f"{n:02d}") for n in range(6, 10)], "filtered after paging"
