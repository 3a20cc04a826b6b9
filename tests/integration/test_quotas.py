"""Per-owner quotas of the kit against a real moto server: concurrent jobs and event
streams through the echo service's API (429 problem+json with Retry-After), and each
quota's lapse rule (a job that ended, a submit that never wrote, a dead task's stream, a
day's reserved bytes) through the store with its clock moved on."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from longhaul.aws.clients import AwsClients
from longhaul.quotas import QuotaExceeded, Quotas, QuotaStore
from longhaul.quotas.counters import DAY_S
from longhaul.quotas.slots import STREAM_LEASE_S
from tests.conftest import Platform
from tests.support.app import forge, running_app
from tests.support.workers import Jobs

PROBLEM = "application/problem+json"


def _auth(platform: Platform, sub: str, key: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {forge(platform.auth, sub=sub)}"}
    return headers | ({"Idempotency-Key": key} if key else {})


def _assert_429(response: httpx.Response, quota: str, limit: int, longest_s: int) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == 429
    assert body["quota"] == quota
    assert body["limit"] == limit
    assert f"{limit}" in body["detail"]
    assert 1 <= int(response.headers["retry-after"]) <= longest_s
    assert body["retry_after_s"] == int(response.headers["retry-after"])


async def _store(aws: AwsClients, platform: Platform, limits: Quotas) -> QuotaStore:
    table = Jobs(aws, platform.env).names.table
    assert table is not None
    return QuotaStore(await aws.get("dynamodb"), table, limits)


class Clock:
    """A store's wall clock, moved on by hand."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def test_jobs_over_the_concurrent_quota_are_429_until_one_ends(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = {"type": "work", "payload": {"steps": 1}}
    async with running_app(monkeypatch, platform, LONGHAUL_QUOTA_CONCURRENT_JOBS="2") as (
        _,
        client,
    ):
        first = await client.post("/jobs", json=body, headers=_auth(platform, "alice", "k1"))
        second = await client.post("/jobs", json=body, headers=_auth(platform, "alice", "k2"))
        over = await client.post("/jobs", json=body, headers=_auth(platform, "alice", "k3"))
        replay = await client.post("/jobs", json=body, headers=_auth(platform, "alice", "k1"))
        bob = await client.post("/jobs", json=body, headers=_auth(platform, "bob"))
        cancel = await client.post(
            f"/jobs/{first.json()['id']}/cancel", headers=_auth(platform, "alice")
        )
        after_cancel = await client.post("/jobs", json=body, headers=_auth(platform, "alice", "k3"))

    assert (first.status_code, second.status_code) == (202, 202)
    _assert_429(over, "concurrent_jobs", 2, 30)
    assert replay.status_code == 202, "a replay makes no job, so the quota lets it through"
    assert replay.headers["idempotent-replayed"] == "true"
    assert bob.status_code == 202, "quotas are per owner"
    assert cancel.json()["state"] == "cancelled"
    assert after_cancel.status_code == 202, "the ended job's slot was freed"


async def test_a_job_slot_whose_submit_never_wrote_lapses(
    aws: AwsClients, platform: Platform, monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    quotas = await _store(aws, platform, Quotas(concurrent_jobs=2))
    monkeypatch.setattr(quotas, "_now", clock)
    await quotas.take_job_slot("carol", pending_s=60)
    await quotas.take_job_slot("carol", key="upload-1", pending_s=120)  # an upload's, say
    with pytest.raises(QuotaExceeded) as refused:
        await quotas.take_job_slot("carol")
    clock.now += 61
    freed = await quotas.take_job_slot("carol")  # the first never made a job
    with pytest.raises(QuotaExceeded):
        await quotas.take_job_slot("carol")  # the upload's slot still waits for its job

    assert refused.value.quota == "concurrent_jobs"
    assert freed is not None


async def test_an_upload_slot_counts_the_job_its_key_makes_until_that_ends(
    aws: AwsClients, platform: Platform, monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    quotas = await _store(aws, platform, Quotas(concurrent_jobs=1))
    monkeypatch.setattr(quotas, "_now", clock)
    store = await Jobs(aws, platform.env).store()
    await quotas.take_job_slot("dave", key="upload-7", pending_s=10)
    job, _ = await store.submit(
        owner="dave", job_type="work", payload={}, idempotency_key="upload-7"
    )
    clock.now += 11  # past its pending time: its job, not the clock, keeps it now
    with pytest.raises(QuotaExceeded):
        await quotas.take_job_slot("dave")
    await store.cancel(job.id, "dave")
    assert await quotas.take_job_slot("dave") is not None


async def test_streams_over_the_quota_are_429_and_a_stream_ends_at_its_lifetime(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = _auth(platform, "alice")
    overrides = {"LONGHAUL_QUOTA_STREAMS": "1", "LONGHAUL_QUOTA_STREAM_LIFETIME_S": "1"}
    async with running_app(monkeypatch, platform, "api", **overrides) as (app, client):
        job = (await client.post("/jobs", json={"type": "work"}, headers=alice)).json()
        url = f"/jobs/{job['id']}/events"
        started = time.monotonic()
        first = asyncio.create_task(client.get(url, headers=alice, timeout=30))
        quotas: QuotaStore = app.state.quotas
        while not (await quotas._read("alice", "STREAMS") or {}).get("slots"):
            await asyncio.sleep(0.05)
        second = await client.get(url, headers=alice)
        ended = await first
        lasted = time.monotonic() - started
        resumed = await client.get(
            url, headers={**alice, "Last-Event-ID": _event_ids(ended.text)[-1]}, timeout=30
        )

    _assert_429(second, "streams", 1, 1)
    assert ended.status_code == 200
    assert 1 <= lasted < 8, "the stream ended at its lifetime, with the job still queued"
    assert "event: state" in ended.text
    assert resumed.status_code == 200, "the ended stream freed its slot"
    assert _event_ids(resumed.text) == [], "nothing new since the last event"


def _event_ids(text: str) -> list[str]:
    return [line[4:] for line in text.replace("\r\n", "\n").splitlines() if line.startswith("id: ")]


async def test_a_dead_tasks_stream_slot_lapses_with_its_lease(
    aws: AwsClients, platform: Platform, monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    quotas = await _store(aws, platform, Quotas(streams=1))
    monkeypatch.setattr(quotas, "_now", clock)
    dead = await quotas.open_stream("erin")  # its task dies: never renewed, never closed
    with pytest.raises(QuotaExceeded) as refused:
        await quotas.open_stream("erin")
    clock.now += STREAM_LEASE_S + 1
    alive = await quotas.open_stream("erin")
    clock.now += STREAM_LEASE_S / 2

    assert refused.value.quota == "streams"
    assert await alive.renew_if_due(), "a live stream keeps its slot"
    assert not await dead.renew_if_due(), "a stream whose slot lapsed must end"


async def test_uploads_per_hour_and_stored_bytes_refuse_and_then_lapse(
    aws: AwsClients, platform: Platform, monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    quotas = await _store(aws, platform, Quotas(uploads_per_hour=2, stored_bytes=1000))
    monkeypatch.setattr(quotas, "_now", clock)
    clock.now = 1000 * DAY_S + 100  # 100 s into an hour
    await quotas.count_upload("fay")
    counted = await quotas.count_upload("fay")
    with pytest.raises(QuotaExceeded) as hourly:
        await quotas.count_upload("fay")
    await quotas.uncount_upload("fay", counted)  # a request that failed gives it back
    await quotas.count_upload("fay")
    clock.now += 3600
    await quotas.count_upload("fay")  # a new hour

    await quotas.reserve_bytes("fay", 600, keep_days=2)
    clock.now += DAY_S
    second = await quotas.reserve_bytes("fay", 300, keep_days=2)
    with pytest.raises(QuotaExceeded) as stored:
        await quotas.reserve_bytes("fay", 200, keep_days=2)
    await quotas.release_bytes("fay", second)
    await quotas.reserve_bytes("fay", 400, keep_days=2)  # 600 + 400: exactly the quota
    clock.now += DAY_S  # the first day's 600 lapse
    await quotas.reserve_bytes("fay", 500, keep_days=2)

    assert hourly.value.quota == "uploads_per_hour"
    assert hourly.value.retry_after_s == 3500, "until the hour ends"
    assert stored.value.quota == "stored_bytes"
    # The 600 bytes were reserved 3,700 s into day 1000 and lapse as day 1002 starts.
    assert stored.value.retry_after_s == DAY_S - 3700, "until the 600 bytes lapse"
    item = await quotas._read("fay", "BYTES")
    assert item is not None
    assert item["total"] == 900 == sum(item["days"].values()), "lapsed days left the total"
