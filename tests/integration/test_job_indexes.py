"""The job table's indexes on moto: the writes a running job makes every few seconds
(heartbeat, progress, checkpoint) touch no indexed or projected attribute, so they cost no
index writes; and running jobs spread over the state index's shards instead of one hot
partition, while the reconciler still finds every one of them."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from longhaul.aws.clients import AwsClients
from longhaul.jobs import JobState
from longhaul.jobs.store import timedelta_ago
from longhaul.jobs.store.items import STATE_SHARDS
from tests.conftest import Platform
from tests.support.workers import Jobs


async def test_heartbeats_progress_and_checkpoints_change_nothing_any_index_holds(
    aws: AwsClients, platform: Platform
) -> None:
    jobs = Jobs(aws, platform.env)
    store = await jobs.store()
    job_id = await jobs.submit({"steps": 1}, enqueue_it=False)
    assert (await store.start(job_id, "lease-a", 30)).started
    before = await store._get_raw(job_id)
    assert before is not None

    await store.heartbeat(job_id, "lease-a", 30)
    await store.progress(job_id, "lease-a", 0.5, "halfway")
    await store.checkpoint(job_id, "lease-a", {"next": 7})
    after = await store._get_raw(job_id)
    assert after is not None
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert {"lease_expires", "progress", "checkpoint"} <= changed, "the writes happened"

    dynamodb = await aws.get("dynamodb")
    assert jobs.names.table is not None
    table = (await dynamodb.describe_table(TableName=jobs.names.table))["Table"]
    indexing = [  # the indexes a job row is in (a service's own sparse indexes hold no job)
        index
        for index in table["GlobalSecondaryIndexes"]
        if all(key["AttributeName"] in after for key in index["KeySchema"])
    ]
    assert len(indexing) == 2
    for index in indexing:
        projection = index["Projection"]
        assert projection["ProjectionType"] != "ALL", f"{index['IndexName']} copies whole rows"
        held = {key["AttributeName"] for key in index["KeySchema"]}
        held |= set(projection.get("NonKeyAttributes", []))
        assert not changed & held, f"{index['IndexName']} is rewritten by {changed & held}"


async def test_running_jobs_spread_over_the_state_shards_and_the_reconciler_sees_them_all(
    aws: AwsClients, platform: Platform
) -> None:
    jobs = Jobs(aws, platform.env)
    store = await jobs.store()
    ids = await asyncio.gather(*(jobs.submit({"steps": 1}, enqueue_it=False) for _ in range(120)))
    await asyncio.gather(*(store.start(job_id, f"lease-{job_id}", 0.1) for job_id in ids))
    rows = await store.rows(list(ids))
    shards = Counter(row["GSI2PK"] for row in rows.values())
    assert all(key.startswith("STATE#running#") for key in shards)
    assert len(shards) == STATE_SHARDS, f"only {len(shards)} partitions used"
    assert max(shards.values()) < 120 * 3 / STATE_SHARDS / 2, "none holds 1.5x its share"

    await asyncio.sleep(0.3)
    found = await store.stale(JobState.RUNNING, timedelta_ago(0), limit=None)
    assert {entry["id"] for entry in found} >= set(ids)
    oldest = await store.stale(JobState.RUNNING, timedelta_ago(0), limit=10)
    assert len(oldest) == 10
    assert [e["GSI2SK"] for e in oldest] == sorted(e["GSI2SK"] for e in found)[:10], (
        "a bounded read gives the oldest across every shard"
    )
    assert all(float(row["lease_expires"]) < time.time() for row in rows.values())
