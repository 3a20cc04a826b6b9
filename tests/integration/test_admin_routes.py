"""The admin routes (longhaul.jobs.admin) on the echo service, against moto: only the
`admin` group reaches them (the provisioned dev admin does, the dev user does not, with
real tokens from the local pool); an admin lists every owner's jobs, filtered and paged;
a dead-lettered job is listed in the DLQ with its reason, and after a redrive it is back
on the work queue and a real worker runs it to success; a redrive is bounded per call and
repeated until nothing is left, losing and doubling nothing; the DLQ's count is one
definition everywhere."""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest
from typer.testing import CliRunner

from longhaul.aws.clients import AwsClients
from longhaul.jobs import JobMessage, JobState, JobStore, dlq
from longhaul.jobs import admin as admin_api
from longhaul.jobs.queue import parse_job_message
from longhaul.local.cli import app as cli
from longhaul.local.token import DEV_ADMIN_USER, dev_token
from tests.conftest import Platform
from tests.support.app import forge, running_app
from tests.support.workers import Jobs, Worker

PROBLEM = "application/problem+json"
ROUTES = [("GET", "/admin/jobs"), ("GET", "/admin/dlq"), ("POST", "/admin/dlq/redrive")]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _caller(platform: Platform, sub: str, *groups: str) -> dict[str, str]:
    changes: dict[str, Any] = {"sub": sub, "username": sub}
    if groups:
        changes["cognito:groups"] = list(groups)
    return _bearer(forge(platform.auth, **changes))


async def _dead_lettered(aws: AwsClients, jobs: Jobs, owner: str) -> str:
    """A job failed as a worker fails one, its message copied to the DLQ as the worker's
    dead-lettering leaves it."""
    store: JobStore = await jobs.store()
    job, _ = await store.submit(owner=owner, job_type="work", payload={"steps": 1, "step_s": 0})
    assert (await store.start(job.id, "worker-a", 30)).started
    assert await store.finish(
        job.id, "worker-a", JobState.FAILED, error="failed after 3 attempts: boom"
    )
    sqs = await aws.get("sqs")
    await sqs.send_message(
        QueueUrl=await jobs.queue_url(dlq=True),
        MessageBody=JobMessage(job_id=job.id).model_dump_json(),
    )
    return job.id


async def _visible(aws: AwsClients, url: str) -> int:
    sqs = await aws.get("sqs")
    attributes = (
        await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


async def test_only_the_admin_group_reaches_the_admin_routes_with_real_local_tokens(
    aws: AwsClients, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The provisioner puts `dev-admin` in group `admin` and leaves `dev` out: the dev
    user's real token is a 403 problem on every admin route, the admin's reaches them, and
    no token at all is a 401."""
    plain = _bearer(await dev_token(aws, platform.env))
    admin = _bearer(await dev_token(aws, platform.env, username=DEV_ADMIN_USER))
    async with running_app(monkeypatch, platform) as (_, client):
        refused = [await client.request(m, path, headers=plain) for m, path in ROUTES]
        anonymous = [await client.request(m, path) for m, path in ROUTES]
        me = (await client.get("/me", headers=admin)).json()
        listed = await client.get("/admin/jobs", headers=admin)
        looked = await client.get("/admin/dlq", headers=admin)
    for answer in refused:
        assert answer.status_code == 403, answer.text
        assert answer.headers["content-type"] == PROBLEM
        assert "'admin'" in answer.json()["detail"]
    assert [a.status_code for a in anonymous] == [401, 401, 401]
    assert me["groups"] == ["admin"]
    assert listed.status_code == 200, listed.text
    assert looked.status_code == 200, looked.text
    assert looked.json() == {"count": 0, "messages": [], "limited": False}


async def test_longhaul_token_prints_the_dev_admins_token_with_user_admin(
    platform: Platform,
) -> None:
    """`longhaul token --user admin` signs `dev-admin` in (its token names the group);
    `longhaul token` stays the dev user's, in no group; an unknown user is refused."""

    async def token(*extra: str) -> Any:
        argv = ["token", "--endpoint", platform.endpoint, "--env", platform.env, *extra]
        return await asyncio.to_thread(CliRunner().invoke, cli, argv)

    admin, plain, unknown = (
        await token("--user", "admin"),
        await token(),
        await token("--user", "root"),
    )
    assert admin.exit_code == 0, admin.output
    assert plain.exit_code == 0, plain.output
    claims = jwt.decode(admin.output.strip(), options={"verify_signature": False})
    assert (claims["username"], claims["cognito:groups"]) == (DEV_ADMIN_USER, ["admin"])
    claims = jwt.decode(plain.output.strip(), options={"verify_signature": False})
    assert claims["username"] == "dev"
    assert "cognito:groups" not in claims
    assert unknown.exit_code != 0


async def test_an_admin_lists_every_owners_jobs_filtered_and_paged(
    aws: AwsClients, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Jobs of two owners, in two states: an owner sees their own, the admin sees both
    owners', by owner, state and type, the latest state change first, and a cursor walk of
    one job a page (across the state index's partitions) returns each exactly once."""
    alice, bob = f"alice-{uuid.uuid4().hex[:6]}", f"bob-{uuid.uuid4().hex[:6]}"
    admin = _caller(platform, "ops", "admin")
    async with running_app(monkeypatch, platform) as (_, client):
        submitted: dict[str, str] = {}
        for owner, steps in ((alice, 1), (alice, 2), (bob, 3)):
            answer = await client.post(
                "/jobs",
                json={"type": "work", "payload": {"steps": steps}},
                headers=_caller(platform, owner),
            )
            assert answer.status_code == 202, answer.text
            submitted[answer.json()["id"]] = owner
        # Bob's job runs and succeeds: it moves to another state's partition, and is the
        # latest state change of the three.
        store = await Jobs(aws, platform.env).store()
        bobs_job = next(job_id for job_id, owner in submitted.items() if owner == bob)
        assert (await store.start(bobs_job, "worker-a", 30)).started
        assert await store.finish(bobs_job, "worker-a", JobState.SUCCEEDED, result={})
        own = (await client.get("/jobs", headers=_caller(platform, bob))).json()
        everyone = (await client.get("/admin/jobs", headers=admin)).json()
        bobs = (await client.get("/admin/jobs", params={"owner": bob}, headers=admin)).json()
        queued = (await client.get("/admin/jobs", params={"state": "queued"}, headers=admin)).json()
        done = (
            await client.get("/admin/jobs", params={"state": "succeeded"}, headers=admin)
        ).json()
        fanouts = (await client.get("/admin/jobs", params={"type": "fanout"}, headers=admin)).json()
        walked: list[str] = []
        cursors: list[str] = []
        cursor: str | None = None
        for _ in range(10):
            params = {"limit": "1", **({"cursor": cursor} if cursor else {})}
            page = (await client.get("/admin/jobs", params=params, headers=admin)).json()
            walked += [job["id"] for job in page["jobs"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
            cursors.append(cursor)
        crafted = await client.get("/admin/jobs", params={"cursor": "bm9wZQ=="}, headers=admin)
        # an every-owner cursor is refused by the one-owner listing, and the other way round
        owners_cursor = await client.get(
            "/admin/jobs", params={"cursor": cursors[0], "owner": bob}, headers=admin
        )
        alices = (
            await client.get("/admin/jobs", params={"owner": alice, "limit": "1"}, headers=admin)
        ).json()
        assert alices["next_cursor"] is not None, "alice has two jobs: a second page"
        everyones_cursor = await client.get(
            "/admin/jobs", params={"cursor": alices["next_cursor"]}, headers=admin
        )

    assert [job["owner"] for job in own["jobs"]] == [bob]
    assert {job["id"]: job["owner"] for job in everyone["jobs"]} == submitted
    assert everyone["jobs"][0]["id"] == bobs_job, "the latest state change first"
    assert everyone["next_cursor"] is None
    assert [job["owner"] for job in bobs["jobs"]] == [bob]
    assert {job["id"] for job in queued["jobs"]} == set(submitted) - {bobs_job}
    assert [job["id"] for job in done["jobs"]] == [bobs_job]
    assert fanouts["jobs"] == []
    assert sorted(walked) == sorted(submitted), "each job exactly once"
    assert crafted.status_code == 400
    assert crafted.headers["content-type"] == PROBLEM
    assert owners_cursor.status_code == 400
    assert everyones_cursor.status_code == 400, "a one-owner cursor: not the every-owner one's"
    assert everyones_cursor.headers["content-type"] == PROBLEM


async def test_a_dead_letter_is_listed_and_after_redrive_a_worker_runs_it(
    aws: AwsClients, platform: Platform, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A failed job's message in the DLQ is listed with its job's type, owner, state and
    error, left in place by the look; the redrive resets the job and moves the message to
    the work queue (the DLQ is empty after it), and a real worker then runs the job to
    `succeeded`."""
    jobs = Jobs(aws, platform.env)
    job_id = await _dead_lettered(aws, jobs, owner="carol")
    admin = _caller(platform, "ops", "admin")
    async with running_app(monkeypatch, platform) as (_, client):
        first = (await client.get("/admin/dlq", headers=admin)).json()
        second = (await client.get("/admin/dlq", headers=admin)).json()
        redriven = await client.post("/admin/dlq/redrive", headers=admin)
        after = (await client.get("/admin/dlq", headers=admin)).json()
        queued = await jobs.get(job_id)
        on_queue = await _visible(aws, await jobs.queue_url())

    assert first["count"] == 1
    (message,) = first["messages"]
    assert message["job_id"] == job_id
    assert (message["type"], message["owner"], message["state"]) == ("work", "carol", "failed")
    assert message["reason"] == "failed after 3 attempts: boom"
    assert message["receives"] >= 1
    assert second["count"] == 1, "a look leaves the message in the DLQ"
    assert redriven.status_code == 200, redriven.text
    assert (redriven.json()["moved"], redriven.json()["jobs_reset"]) == (1, [job_id])
    assert redriven.json()["left"] == 0
    assert after == {"count": 0, "messages": [], "limited": False}
    assert queued.state is JobState.QUEUED
    assert on_queue == 1, "the message is back on the work queue"

    worker = Worker(platform, tmp_path, name="admin")
    try:
        finished = await jobs.wait(job_id, JobState.SUCCEEDED, JobState.FAILED, timeout=90)
    finally:
        worker.stop()
    assert finished.state is JobState.SUCCEEDED, worker.log()[-2000:]


async def test_the_every_owner_listing_reads_a_bounded_slice_a_call_in_exact_order(
    aws: AwsClients, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page of every owner's jobs reads at most the read budget of index entries (plus
    one a partition), and a small budget neither reorders nor loses nor doubles a job:
    with a type no job has, every call stays bounded and the walk still ends."""
    from longhaul.jobs.store import listing

    jobs = Jobs(aws, platform.env)
    store = await jobs.store()
    owners = [f"owner-{i % 3}" for i in range(40)]
    created = [await jobs.submit({}, owner=owner, enqueue_it=False) for owner in owners]
    for job_id, owner in list(zip(created, owners, strict=True))[::4]:
        await store.cancel(job_id, owner)  # a second state's partitions, changed later
    budget = 4
    monkeypatch.setattr(listing, "ALL_READ_BUDGET", budget)
    reads: list[int] = []
    query = store._db.query

    async def counted(**arguments: Any) -> Any:
        response = await query(**arguments)
        reads[-1] += len(response.get("Items", []))
        return response

    monkeypatch.setattr(store._db, "query", counted)

    async def walk(**filters: Any) -> list[Any]:
        found: list[Any] = []
        cursor: str | None = None
        while True:
            reads.append(0)
            page = await store.page_all(limit=10, cursor=cursor, **filters)
            found += page.jobs
            cursor = page.cursor
            if cursor is None:
                return found

    everything = await walk()
    assert sorted(job.id for job in everything) == sorted(created), "each job exactly once"
    stamps = [job.updated_at for job in everything]
    assert stamps == sorted(stamps, reverse=True), "the latest state change first"
    partitions = len(listing.partitions(None))
    assert max(reads) <= budget + partitions, reads
    reads.clear()
    assert await walk(job_type="nope") == []
    assert max(reads) <= budget + partitions, reads


async def _drain(aws: AwsClients, url: str) -> list[str]:
    """The job ids of every message on the queue at `url`, each received (and hidden) once."""
    sqs = await aws.get("sqs")
    found: list[str] = []
    while True:
        response = await sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=300, WaitTimeSeconds=1
        )
        messages = response.get("Messages", [])
        if not messages:
            return found
        for message in messages:
            job = parse_job_message(message["Body"])
            assert job is not None, message["Body"]
            found.append(job.job_id)


async def test_a_redrive_call_is_bounded_and_repeated_calls_move_each_message_once(
    aws: AwsClients,
    platform: Platform,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With a bound of 3 messages a call, a DLQ of 8 takes 3 calls (3, 3, 2 moved): each
    answers `left`, what is still in the DLQ, and whether it stopped at its bound; at the
    end every message is on the work queue exactly once and every job is queued. Each call
    is logged with the admin's `sub` and its counts, and the admin's token is in no log."""
    jobs = Jobs(aws, platform.env)
    failed = [await _dead_lettered(aws, jobs, owner=f"owner-{i}") for i in range(8)]
    monkeypatch.setattr(admin_api, "REDRIVE_MOST", 3)
    sub = f"ops-{uuid.uuid4().hex[:8]}"
    token = forge(platform.auth, sub=sub, username="ops", **{"cognito:groups": ["admin"]})
    answers: list[dict[str, Any]] = []
    caplog.set_level(logging.INFO, logger="longhaul.jobs.admin")
    async with running_app(monkeypatch, platform) as (_, client):
        for _ in range(6):  # three are needed; more would be a bug the asserts show
            answer = await client.post("/admin/dlq/redrive", headers=_bearer(token))
            assert answer.status_code == 200, answer.text
            answers.append(answer.json())
            if answer.json()["left"] == 0:
                break
        after = (await client.get("/admin/dlq", headers=_bearer(token))).json()
    on_queue = await _drain(aws, await jobs.queue_url())
    states = [(await jobs.get(job_id)).state for job_id in failed]

    assert [(a["moved"], a["left"]) for a in answers] == [(3, 5), (3, 2), (2, 0)]
    assert [a["stopped"] for a in answers] == [True, True, False]
    assert sorted(j for a in answers for j in a["jobs_reset"]) == sorted(failed)
    assert after["count"] == 0
    assert sorted(on_queue) == sorted(failed), "each message on the work queue exactly once"
    assert states == [JobState.QUEUED] * len(failed)
    lines = [r.getMessage() for r in caplog.records if r.name == "longhaul.jobs.admin"]
    redriven = [line for line in lines if "redriven" in line]
    assert len(redriven) == 3, lines
    assert all(f"admin {sub}" in line for line in redriven), redriven
    assert "moved 3," in redriven[0], redriven[0]
    assert redriven[0].endswith("left 5"), redriven[0]
    assert not any(token in r.getMessage() for r in caplog.records)


async def test_a_delayed_dead_letter_is_counted_alike_by_a_look_the_sample_and_a_redrive(
    aws: AwsClients, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A DLQ of one visible and one delayed message holds two by every count: the queue's
    counts' `total`, the sample's `about`, a look's `count`, and the `left` of a redrive
    that moved the visible one and stopped at its time bound with the delayed one there."""
    jobs = Jobs(aws, platform.env)
    job_id = await _dead_lettered(aws, jobs, owner="dave")
    sqs = await aws.get("sqs")
    dlq_url = await jobs.queue_url(dlq=True)
    await sqs.send_message(QueueUrl=dlq_url, MessageBody='{"event": "late"}', DelaySeconds=900)
    monkeypatch.setattr(admin_api, "REDRIVE_S", 0.1)
    token = _caller(platform, "ops", "admin")
    counts = await dlq.counts(sqs, dlq_url)
    sample = await dlq.peek(sqs, dlq_url, wait_s=1)
    async with running_app(monkeypatch, platform) as (_, client):
        looked = (await client.get("/admin/dlq", headers=token)).json()
        redriven = (await client.post("/admin/dlq/redrive", headers=token)).json()

    assert (counts.visible, counts.delayed, counts.total) == (1, 1, 2)
    assert sample.about == 2
    assert len(sample.messages) == 1, "a delayed message is not received"
    assert looked["count"] == 2
    assert (redriven["moved"], redriven["jobs_reset"]) == (1, [job_id])
    assert (redriven["left"], redriven["stopped"]) == (1, True)
