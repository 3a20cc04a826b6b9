"""The job routes: idempotent submission, ownership, cursor pagination (bounded per request,
crafted cursors refused), SSE with resume.

LONGHAUL_PAGINATION_JOBS sets how many jobs the cursor walk pages through, 40 a page
(default 130: three full pages and a partial one; keep it off a multiple of 40, where the
walk may end on an empty page). Each submit is a transaction, which moto pays for with a
copy of the whole table: the cost grows faster than the count."""

from __future__ import annotations

import json
import math
import os
import uuid
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from longhaul.aws.clients import AwsClients
from longhaul.jobs.store import queries
from tests.conftest import Platform
from tests.support.app import forge, running_app
from tests.support.moto import MotoServer
from tests.support.workers import Jobs

PROBLEM = "application/problem+json"
PAGINATION_JOBS = int(os.environ.get("LONGHAUL_PAGINATION_JOBS", "130"))


def _auth(platform: Platform, sub: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {forge(platform.auth, sub=sub)}"}


async def test_same_idempotency_key_and_body_returns_the_same_job_another_body_409(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = _auth(platform, "alice")
    body = {"type": "work", "payload": {"steps": 2}}
    async with running_app(monkeypatch, platform) as (_, client):
        first = await client.post("/jobs", json=body, headers={**alice, "Idempotency-Key": "k-1"})
        again = await client.post("/jobs", json=body, headers={**alice, "Idempotency-Key": "k-1"})
        other = await client.post(
            "/jobs",
            json={"type": "work", "payload": {"steps": 3}},
            headers={**alice, "Idempotency-Key": "k-1"},
        )
        no_key = await client.post("/jobs", json=body, headers=alice)
        bob_same_key = await client.post(
            "/jobs", json=body, headers={**_auth(platform, "bob"), "Idempotency-Key": "k-1"}
        )

    assert first.status_code == 202
    assert first.headers["location"] == f"/jobs/{first.json()['id']}"
    assert again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert other.status_code == 409
    assert other.headers["content-type"] == PROBLEM
    assert no_key.json()["id"] != first.json()["id"]
    assert bob_same_key.json()["id"] != first.json()["id"], "keys are per caller"
    assert first.json()["owner"] == "alice"
    assert first.json()["state"] == "queued"


async def test_bad_submissions_are_422_with_field_paths(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = _auth(platform, "alice")
    async with running_app(monkeypatch, platform) as (_, client):
        unknown = await client.post("/jobs", json={"type": "nope"}, headers=alice)
        invalid = await client.post(
            "/jobs", json={"type": "work", "payload": {"steps": 0}}, headers=alice
        )
        # Valid for the model, but a number DynamoDB cannot hold (AWS would refuse the write).
        tiny = await client.post(
            "/jobs", json={"type": "work", "payload": {"step_s": 1e-300}}, headers=alice
        )
    assert unknown.status_code == 422
    assert unknown.json()["known_types"] == ["fanout", "work"]
    assert invalid.status_code == 422
    assert [e["field"] for e in invalid.json()["errors"]] == ["body.payload.steps"]
    assert tiny.status_code == 422, tiny.text
    assert [e["field"] for e in tiny.json()["errors"]] == ["body.payload.step_s"]


async def test_another_callers_job_answers_404_like_a_missing_one(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = _auth(platform, "alice"), _auth(platform, "bob")
    async with running_app(monkeypatch, platform) as (_, client):
        job_id = (await client.post("/jobs", json={"type": "work"}, headers=alice)).json()["id"]
        missing = uuid.uuid4().hex
        answers = [
            await client.get(f"/jobs/{job_id}", headers=bob),
            await client.post(f"/jobs/{job_id}/cancel", headers=bob),
            await client.get(f"/jobs/{job_id}/events", headers=bob),
        ]
        for_missing = await client.get(f"/jobs/{missing}", headers=bob)
        bobs_list = await client.get("/jobs", headers=bob)
        own = await client.get(f"/jobs/{job_id}", headers=alice)
    for answer in answers:
        assert answer.status_code == 404
        assert answer.json()["detail"] == for_missing.json()["detail"] == "no such job"
    assert bobs_list.json()["jobs"] == []
    assert own.status_code == 200


async def test_cursor_pagination_over_many_jobs_returns_each_once_newest_first(
    aws: AwsClients, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = Jobs(aws, platform.env)
    created = [
        await jobs.submit({"steps": 1}, owner="carol", enqueue_it=False)
        for _ in range(PAGINATION_JOBS)
    ]
    carol = _auth(platform, "carol")
    seen: list[str] = []
    pages = 0
    async with running_app(monkeypatch, platform) as (_, client):
        cursor = None
        while True:
            params = {"limit": "40", **({"cursor": cursor} if cursor else {})}
            page = (await client.get("/jobs", params=params, headers=carol)).json()
            seen += [job["id"] for job in page["jobs"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        succeeded = (await client.get("/jobs", params={"state": "succeeded"}, headers=carol)).json()
        forged = await client.get("/jobs", params={"cursor": "eyJHU0kxUEsiOiB7fX0="}, headers=carol)
    assert len(seen) == PAGINATION_JOBS
    assert set(seen) == set(created)
    assert seen == list(reversed(created)), "newest first, in a stable order"
    assert pages == math.ceil(PAGINATION_JOBS / 40)
    assert succeeded["jobs"] == [], "none has run"
    assert forged.status_code == 400


async def test_listing_a_rare_state_reads_a_bounded_slice_of_the_index_per_request(
    aws: AwsClients, moto: MotoServer, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = Jobs(aws, platform.env)
    store = await jobs.store()
    created = [await jobs.submit({}, owner="dina", enqueue_it=False) for _ in range(90)]
    cancelled = created[5:8] + created[70:72]  # old ones behind many queued ones
    for job_id in cancelled:
        await store.cancel(job_id, "dina")
    monkeypatch.setattr(queries, "LIST_READ_BUDGET", 30)
    dina = _auth(platform, "dina")
    queries_per_request: list[int] = []
    found: list[str] = []
    moto.faults.clear()
    counter = moto.faults.inject(
        "dynamodb", "latency", seconds=0, operation="Query", match=platform.env
    )
    try:
        async with running_app(monkeypatch, platform) as (_, client):
            cursor = None
            while True:
                before = moto.faults.matched(counter)
                params = {
                    "state": "cancelled",
                    "limit": "1",
                    **({"cursor": cursor} if cursor else {}),
                }
                page = (await client.get("/jobs", params=params, headers=dina)).json()
                queries_per_request.append(moto.faults.matched(counter) - before)
                found += [job["id"] for job in page["jobs"]]
                cursor = page["next_cursor"]
                if cursor is None:
                    break
    finally:
        moto.faults.clear()
    assert found == list(reversed(cancelled)), "every cancelled job, once, newest first"
    assert max(queries_per_request) == 1, "one query of at most 30 index entries a request"
    assert len(queries_per_request) >= 90 // 30, "pages with no match still carry a cursor"


async def test_a_crafted_cursor_is_400_problem_json(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = _auth(platform, "alice"), _auth(platform, "bob")
    crafted = [
        "%%%not-base64",
        "eyJub3QganNvbg",  # base64 of a JSON fragment
        "bnVsbA==",  # null
        "eyJHU0kxUEsiOiAiT1dORVIjYWxpY2UifQ==",  # {"GSI1PK": "OWNER#alice"}
        "W1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tb",
    ]
    async with running_app(monkeypatch, platform) as (_, client):
        for _ in range(2):
            await client.post("/jobs", json={"type": "work"}, headers=bob)
        bobs = (await client.get("/jobs", params={"limit": "1"}, headers=bob)).json()
        answers = [
            await client.get("/jobs", params={"cursor": cursor}, headers=alice)
            for cursor in [*crafted, bobs["next_cursor"]]
        ]
        own = await client.get("/jobs", params={"cursor": bobs["next_cursor"]}, headers=bob)
    for answer in answers:
        assert answer.status_code == 400, answer.text
        assert answer.headers["content-type"] == PROBLEM
        assert answer.json()["detail"] == "the cursor is not one this API issued"
    assert own.status_code == 200
    assert len(own.json()["jobs"]) == 1


async def test_event_stream_follows_the_job_to_its_end_and_resumes_from_last_event_id(
    platform: Platform, monkeypatch: pytest.MonkeyPatch, metric_reader: InMemoryMetricReader
) -> None:
    alice = _auth(platform, "alice")
    overrides = {"LONGHAUL_POLL_WAIT_S": "1", "LONGHAUL_CANCEL_POLL_S": "0.3"}
    async with running_app(monkeypatch, platform, role="all", **overrides) as (_, client):
        job = (
            await client.post(
                "/jobs",
                json={"type": "work", "payload": {"steps": 3, "step_s": 0.6}},
                headers=alice,
            )
        ).json()
        stream = await client.get(f"/jobs/{job['id']}/events", headers=alice, timeout=60)
        events = _parse_sse(stream.text)
        resumed = await client.get(
            f"/jobs/{job['id']}/events",
            headers={**alice, "Last-Event-ID": events[1]["id"]},
            timeout=60,
        )
    assert stream.headers["content-type"].startswith("text/event-stream")
    states = [(e["event"], e["data"]["state"]) for e in events]
    assert states[0] == ("state", "queued")
    assert ("state", "running") in states
    assert states[-1] == ("state", "succeeded")
    assert [e["data"]["progress"] for e in events if e["event"] == "progress"][-1] == 1.0
    assert _parse_sse(resumed.text) == events[2:]
    # The business metrics of the run, from the in-process OpenTelemetry reader.
    recorded = _metric_names(metric_reader)
    assert {
        "longhaul.jobs.submitted",
        "longhaul.jobs.started",
        "longhaul.jobs.finished",
        "longhaul.jobs.duration",
        "longhaul.jobs.queue_wait",
    } <= recorded


def _metric_names(reader: InMemoryMetricReader) -> set[str]:
    data = reader.get_metrics_data()
    return {
        metric.name
        for resource in (data.resource_metrics if data else [])
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }


def _parse_sse(text: str) -> list[dict[str, Any]]:
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields = dict(
            line.split(": ", 1)
            for line in block.splitlines()
            if ": " in line and not line.startswith(":")
        )
        if "data" in fields:
            events.append(
                {
                    "id": fields.get("id"),
                    "event": fields.get("event"),
                    "data": json.loads(fields["data"]),
                }
            )
    return events


async def test_submission_publishes_the_versioned_submitted_fact(
    aws: AwsClients, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_app(monkeypatch, platform) as (_, client):
        job = (
            await client.post("/jobs", json={"type": "work"}, headers=_auth(platform, "alice"))
        ).json()
    jobs = Jobs(aws, platform.env)
    sqs = await aws.get("sqs")
    facts = []
    for _ in range(3):  # the queue holds the job message and the fact (own-facts rule)
        received = await sqs.receive_message(
            QueueUrl=await jobs.queue_url(), MaxNumberOfMessages=10, WaitTimeSeconds=2
        )
        facts += [
            json.loads(m["Body"])
            for m in received.get("Messages", [])
            if "detail-type" in m["Body"]
        ]
        if facts:
            break
    [fact] = facts
    assert fact["detail-type"] == "echo.job.submitted"
    assert fact["detail"]["version"] == 1
    assert fact["detail"]["data"] == {
        "job_id": job["id"],
        "job_type": "work",
        "owner": "alice",
        "state": "queued",
        "attempts": 0,
        "error": None,
    }
