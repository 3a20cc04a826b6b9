"""POST /jobs once the job is written: accepted whatever the queue does, and one job for
any number of concurrent requests with one Idempotency-Key.

moto applies concurrent writes without isolation and never reports a transaction conflict,
so the races run through `DynamoTransactions`, a proxy that gives it DynamoDB's semantics.

LONGHAUL_SUBMIT_RACE_ROUNDS sets how many rounds of 16 concurrent submits with one key the
race runs (default 10; more for a soak): the rounds together must meet conflicts, and
each round is judged on its own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from longhaul.aws.clients import AwsClients
from longhaul.jobs import JobState
from longhaul.jobs.store.items import from_item, to_item
from tests.conftest import Platform
from tests.support.app import forge, running_app
from tests.support.moto import free_port
from tests.support.workers import Jobs

CONCURRENT = 16
ROUNDS = int(os.environ.get("LONGHAUL_SUBMIT_RACE_ROUNDS", "10"))


def _auth(platform: Platform, sub: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {forge(platform.auth, sub=sub)}"}


async def _row(aws: AwsClients, jobs: Jobs, job_id: str) -> dict[str, Any]:
    """The job's item as stored, with what the API does not show (`enqueued_at`)."""
    dynamodb = await aws.get("dynamodb")
    response = await dynamodb.get_item(
        TableName=jobs.names.table,
        Key=to_item({"PK": f"JOB#{job_id}", "SK": "META"}),
        ConsistentRead=True,
    )
    return from_item(response["Item"])


async def _all_jobs(client: httpx.AsyncClient, headers: dict[str, str]) -> list[str]:
    ids: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "100", **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/jobs", params=params, headers=headers)).json()
        ids += [job["id"] for job in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids


async def test_submit_answers_202_when_the_send_fails_and_the_reconciler_enqueues_the_job(
    aws: AwsClients,
    platform: Platform,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    alice = {**_auth(platform, "alice"), "Idempotency-Key": "send-fails"}
    body = {"type": "work", "payload": {"steps": 1, "step_s": 0}}
    jobs = Jobs(aws, platform.env)
    fast = {
        "LONGHAUL_POLL_WAIT_S": "1",
        "LONGHAUL_RECONCILE_EVERY_S": "1",
        "LONGHAUL_RECONCILE_AFTER_S": "3",
    }
    caplog.set_level(logging.WARNING)
    async with running_app(monkeypatch, platform, role="all", **fast) as (app, client):
        # The API's sends go to a queue that does not exist (moto answers
        # QueueDoesNotExist); the worker and its reconciler keep the real one.
        app.state.queue_url += "-missing"
        first = await client.post("/jobs", json=body, headers=alice)
        assert first.status_code == 202, first.text
        job_id = first.json()["id"]
        written = await _row(aws, jobs, job_id)
        again = await client.post("/jobs", json=body, headers=alice)
        done = await jobs.wait(job_id, JobState.SUCCEEDED, timeout=30)
        enqueued = await _row(aws, jobs, job_id)
        owned = await _all_jobs(client, alice)

    assert first.headers["location"] == f"/jobs/{job_id}"
    assert first.json()["state"] == "queued"
    assert written["state"] == "queued"
    assert "enqueued_at" not in written, "the send failed, so nothing marked it enqueued"
    assert again.status_code == 202
    assert again.json()["id"] == job_id
    assert again.headers["idempotent-replayed"] == "true"
    assert owned == [job_id], "the retry made no second job"
    assert done.runs == 1
    assert "enqueued_at" in enqueued
    messages = [r.getMessage() for r in caplog.records]
    assert any("reconciler will enqueue it" in m for m in messages), messages
    assert "reconciler re-enqueued the job" in messages


async def test_concurrent_submits_with_one_key_all_get_the_one_job(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    bob = _auth(platform, "bob")
    body = {"type": "work", "payload": {"steps": 1}}
    failed_rounds: list[str] = []
    winners: list[str] = []
    async with dynamodb_transactions(platform.endpoint) as dynamodb:
        proxied = dataclasses.replace(platform, endpoint=dynamodb.endpoint)
        async with running_app(monkeypatch, proxied) as (_, client):
            for round_ in range(ROUNDS):
                headers = {**bob, "Idempotency-Key": f"race-{round_}"}
                answers = await asyncio.gather(
                    *(client.post("/jobs", json=body, headers=headers) for _ in range(CONCURRENT))
                )
                statuses = Counter(answer.status_code for answer in answers)
                ids = {answer.json().get("id") for answer in answers if answer.status_code == 202}
                if statuses != Counter({202: CONCURRENT}) or len(ids) != 1:
                    failed_rounds.append(f"round {round_}: {dict(statuses)}, {len(ids)} job ids")
                    continue
                replayed = [a for a in answers if a.headers.get("idempotent-replayed") == "true"]
                assert len(replayed) == CONCURRENT - 1, "one request made the job, the rest replay"
                winners += ids
            owned = await _all_jobs(client, bob)

    print(f"\n{ROUNDS} rounds of {CONCURRENT}: {dynamodb.conflicts} conflicts")
    assert dynamodb.conflicts > 0, "the race was hit: requests met a committing write"
    assert not failed_rounds, f"{len(failed_rounds)} of {ROUNDS} rounds failed: {failed_rounds}"
    assert sorted(owned) == sorted(winners), "exactly one job per key"


async def test_submit_cancelled_by_a_write_that_then_failed_writes_the_job_itself(
    aws: AwsClients, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    carol = {**_auth(platform, "carol"), "Idempotency-Key": "held"}
    table = str(Jobs(aws, platform.env).names.table)
    async with dynamodb_transactions(platform.endpoint) as dynamodb:
        proxied = dataclasses.replace(platform, endpoint=dynamodb.endpoint)
        async with running_app(monkeypatch, proxied) as (_, client):
            # Another request's transaction holds the key's record, then fails: its record
            # never appears, so this request's cancelled write must be made again.
            async with dynamodb.committing(table, "IDEM#carol#held", "IDEM"):
                submitting = asyncio.create_task(
                    client.post("/jobs", json={"type": "work"}, headers=carol)
                )
                async with asyncio.timeout(10):
                    while not dynamodb.conflicts:
                        await asyncio.sleep(0.01)
            answer = await submitting
            owned = await _all_jobs(client, carol)

    assert answer.status_code == 202, answer.text
    assert "idempotent-replayed" not in answer.headers
    assert owned == [answer.json()["id"]]


async def test_submit_cancelled_through_every_retry_answers_503_with_retry_after(
    aws: AwsClients, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    dave = {**_auth(platform, "dave"), "Idempotency-Key": "stuck"}
    table = str(Jobs(aws, platform.env).names.table)
    async with dynamodb_transactions(platform.endpoint) as dynamodb:
        proxied = dataclasses.replace(platform, endpoint=dynamodb.endpoint)
        async with running_app(monkeypatch, proxied) as (_, client):
            async with dynamodb.committing(table, "IDEM#dave#stuck", "IDEM"):
                answer = await client.post("/jobs", json={"type": "work"}, headers=dave)
            owned = await _all_jobs(client, dave)

    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "1"
    assert answer.headers["content-type"] == "application/problem+json"
    assert owned == [], "nothing was written"


class DynamoTransactions:
    """DynamoDB's transaction semantics in front of moto, which lacks them: writes apply one
    at a time (moto's are not atomic under concurrent requests), a transaction takes
    `commit_s` to commit, reads meanwhile see its items as they were, and a transaction that
    touches an item another is committing is cancelled with TransactionConflict."""

    def __init__(self, upstream: str, commit_s: float = 0.03) -> None:
        self.upstream = httpx.AsyncClient(base_url=upstream)
        self.commit_s = commit_s
        self.endpoint = ""
        self.conflicts = 0
        self._writes = asyncio.Lock()
        self._committing: set[str] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        body = await request.body()
        operation = request.headers.get("x-amz-target", "").removeprefix("DynamoDB_20120810.")
        if operation == "TransactWriteItems":
            response = await self._transaction(request, body)
        elif operation in ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"):
            async with self._writes:
                response = await self._forward(request, body)
        else:
            response = await self._forward(request, body)
        await response(scope, receive, send)

    async def _transaction(self, request: Request, body: bytes) -> Response:
        keys = []
        for action in json.loads(body)["TransactItems"]:
            op = next(iter(action.values()))
            item = op.get("Item") or op["Key"]
            keys.append(_item(op["TableName"], item["PK"]["S"], item["SK"]["S"]))
        if self._committing.intersection(keys):
            self.conflicts += 1
            reasons = [
                {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}
                if key in self._committing
                else {"Code": "None"}
                for key in keys
            ]
            return JSONResponse(
                {
                    "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                    "Message": "Transaction cancelled, please refer cancellation reasons",
                    "CancellationReasons": reasons,
                },
                status_code=400,
                media_type="application/x-amz-json-1.0",
            )
        self._committing.update(keys)
        try:
            async with self._writes:
                await asyncio.sleep(self.commit_s)
                return await self._forward(request, body)
        finally:
            self._committing.difference_update(keys)

    @asynccontextmanager
    async def committing(self, table: str, pk: str, sk: str) -> AsyncIterator[None]:
        """Another client's transaction on the item, committing for the whole block."""
        key = _item(table, pk, sk)
        self._committing.add(key)
        try:
            yield
        finally:
            self._committing.discard(key)

    async def _forward(self, request: Request, body: bytes) -> Response:
        answer = await self.upstream.request(
            request.method,
            request.url.path,
            params=request.query_params,
            headers={k: v for k, v in request.headers.items() if k not in _HOP_BY_HOP},
            content=body,
        )
        headers = {k: v for k, v in answer.headers.items() if k not in _HOP_BY_HOP}
        return Response(answer.content, status_code=answer.status_code, headers=headers)


def _item(table: str, pk: str, sk: str) -> str:
    return f"{table} {pk} {sk}"


_HOP_BY_HOP = {"host", "connection", "content-length", "transfer-encoding", "content-encoding"}


@asynccontextmanager
async def dynamodb_transactions(upstream: str) -> AsyncIterator[DynamoTransactions]:
    """`DynamoTransactions` served on a free loopback port, forwarding to `upstream`."""
    proxy = DynamoTransactions(upstream)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            proxy, host="127.0.0.1", port=port, lifespan="off", ws="none", log_level="warning"
        )
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        assert not serving.done(), "the proxy did not start"
        await asyncio.sleep(0.01)
    proxy.endpoint = f"http://127.0.0.1:{port}"
    try:
        yield proxy
    finally:
        server.should_exit = True
        await serving
        await proxy.upstream.aclose()
