"""The analytics engine's correctness oracle: 3,000 generated events (ANALYTICS_ORACLE_EVENTS),
20% sent twice, shuffled, some hours late, half through
POST /events and half through the queue to real worker processes killed -9 while they
work and replaced. Every aggregate of every window kind and group equals DuckDB's
recomputation over the distinct raw events that were not set aside as late (zero
differences); only events older than the watermark's retention are set aside; every window
an idle source no longer holds is final; and after compaction the lake holds each distinct
event exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from longhaul.aws.clients import AwsClients
from longhaul_analytics.analytics.lake import Partition, flush_partitions, read_rows
from longhaul_analytics.analytics.store import AnalyticsStore
from longhaul_analytics.analytics.windows import WINDOWS
from longhaul_analytics.worker.lake_jobs import compact_partition
from tests.integration.analytics.engine_support import (
    AnalyticsPlatform,
    AnalyticsWorker,
    analytics_api,
    provision_analytics,
)
from tests.support.moto import MotoServer

pytestmark = pytest.mark.e2e

EVENTS = int(os.environ.get("ANALYTICS_ORACLE_EVENTS", "3000"))
MINUTE = 60_000
HOUR = 60 * MINUTE
GAP_MS = 300_000
ORDER, VIEW = "shop.order.placed", "shop.page.viewed"
ORDERS = {"event": ORDER, "dimensions": ["country"], "value": "amount", "distinct": "user"}
WORKER_ENV = {
    "LONGHAUL_JOB_CONCURRENCY": "10",
    "LONGHAUL_VISIBILITY_TIMEOUT_S": "5",
    "ANALYTICS_CLOSER": "false",  # the API in the test closes: two closers would only wait
}
SETTINGS = {"ANALYTICS_RETENTION_S": "7200", "ANALYTICS_SESSION_GAP_S": str(GAP_MS // 1000)}


@pytest.fixture
def analytics_workers() -> Iterator[list[AnalyticsWorker]]:
    started: list[AnalyticsWorker] = []
    yield started
    for worker in started:
        worker.stop()


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def generate(now_ms: int, rng: random.Random) -> list[dict[str, Any]]:
    """Distinct events over the last 30 minutes, and 5% of them five hours older."""
    events = []
    for i in range(EVENTS):
        if i % 20 == 0:
            at = now_ms - 5 * HOUR + rng.randint(0, 5 * MINUTE)
        else:
            at = now_ms - rng.randint(MINUTE, 30 * MINUTE)
        name = ORDER if rng.random() < 0.7 else VIEW
        properties: dict[str, Any] = {
            "country": rng.choice(["fr", "de", "it", "es"]),
            "user": f"u{rng.randint(0, 150)}",
        }
        if name == ORDER and rng.random() < 0.9:
            properties["amount"] = rng.randint(1, 1000)
        events.append({"id": f"e{i:05d}", "name": name, "time": iso(at), "properties": properties})
    return events


def envelope(event: dict[str, Any], owner: str) -> str:
    return json.dumps(
        {
            "id": event["id"],
            "type": event["name"],
            "version": 1,
            "source": "longhaul.shop",
            "time": event["time"],
            "correlation_id": event["id"],
            "data": {"owner": owner, **event["properties"]},
        }
    )


async def send_to_queue(aws: AwsClients, url: str, events: list[dict[str, Any]]) -> None:
    sqs = await aws.get("sqs")
    for i in range(0, len(events), 10):
        entries = [
            {"Id": str(n), "MessageBody": envelope(e, "alice")}
            for n, e in enumerate(events[i : i + 10])
        ]
        response = await sqs.send_message_batch(QueueUrl=url, Entries=entries)
        assert not response.get("Failed"), response


async def post_all(
    api: httpx.AsyncClient, headers: dict[str, str], events: list[dict[str, Any]]
) -> None:
    for i in range(0, len(events), 250):
        response = await api.post("/events", json={"events": events[i : i + 250]}, headers=headers)
        assert response.status_code == 200, response.text


async def backlog(aws: AwsClients, url: str) -> int:
    attributes = (
        await (await aws.get("sqs")).get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


async def chaos(
    platform: AnalyticsPlatform,
    logs: Path,
    workers: list[AnalyticsWorker],
    aws: AwsClients,
    url: str,
) -> int:
    """Twice, kill -9 a worker while it works through the queue (it is up and the backlog
    fell since it came up) and start another; then wait for the queue to empty."""
    kills = 0
    while True:
        left = await backlog(aws, url)
        if left == 0:
            return kills
        working = [w for w in workers if w.process.poll() is None and w.ready()]
        if kills < 2 and working and left < working[0].backlog_at_ready(left):
            working[0].kill9()
            kills += 1
            workers.append(AnalyticsWorker(platform, logs, f"r{kills}", **SETTINGS, **WORKER_ENV))
        await asyncio.sleep(random.uniform(0.3, 1.0))


def oracle(events: list[dict[str, Any]]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """DuckDB's aggregates of `events` for every metric, window kind and group."""
    db = duckdb.connect()
    db.execute(
        "CREATE TABLE ev (id VARCHAR, name VARCHAR, t BIGINT, country VARCHAR, "
        "usr VARCHAR, amount DOUBLE)"
    )
    db.executemany(
        "INSERT INTO ev VALUES (?, ?, ?, ?, ?, ?)",
        [
            (
                e["id"],
                e["name"],
                round(datetime.fromisoformat(e["time"]).timestamp() * 1000),
                e["properties"]["country"],
                e["properties"]["user"],
                e["properties"].get("amount"),
            )
            for e in events
        ],
    )
    expected: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    stats = (
        "count(*), sum(amount), min(amount), max(amount), count(DISTINCT usr), "
        "quantile_disc(amount, 0.5), quantile_disc(amount, 0.95), quantile_disc(amount, 0.99)"
    )
    windows = {"1m": (MINUTE, MINUTE), "1h": (HOUR, HOUR), "1d": (24 * HOUR, 24 * HOUR)}
    windows["5m/1m"] = (5 * MINUTE, MINUTE)
    for window, (size, slide) in windows.items():
        starts = f"unnest(range(t - t % {slide} - {size - slide}, t - t % {slide} + 1, {slide}))"
        for metric, group, where, distinct in (
            ("orders", "country", f"name = '{ORDER}'", True),
            ("events", "name", "true", False),
        ):
            rows = db.execute(
                f"SELECT w, {group}, {stats} FROM (SELECT {starts} AS w, * FROM ev "  # noqa: S608
                f"WHERE {where}) GROUP BY w, {group}"
            ).fetchall()
            for w, key, count, total, low, high, users, p50, p95, p99 in rows:
                if distinct:  # orders: amount is its value, user its distinct key
                    expected[(metric, window, w, key)] = (
                        count,
                        total,
                        low,
                        high,
                        users,
                        p50,
                        p95,
                        p99,
                    )
                else:  # the built-in metric counts only
                    expected[(metric, window, w, key)] = (count, *[None] * 7)
    sessions = db.execute(
        f"""
        WITH o AS (SELECT * FROM ev WHERE name = '{ORDER}'),
        s AS (SELECT *, CASE WHEN t - lag(t) OVER (PARTITION BY country ORDER BY t) <= {GAP_MS}
              THEN 0 ELSE 1 END AS new FROM o),
        n AS (SELECT *, sum(new) OVER (PARTITION BY country ORDER BY t
              ROWS UNBOUNDED PRECEDING) AS sid FROM s)
        SELECT min(t), country, {stats} FROM n GROUP BY country, sid
        """  # noqa: S608
    ).fetchall()
    for start, key, count, total, low, high, users, p50, p95, p99 in sessions:
        expected[("orders", "session", start, key)] = (
            count,
            total,
            low,
            high,
            users,
            p50,
            p95,
            p99,
        )
    return expected


async def served(
    api: httpx.AsyncClient, headers: dict[str, str], first_ms: int, end_ms: int
) -> tuple[dict[tuple[Any, ...], tuple[Any, ...]], list[dict[str, Any]]]:
    """What GET /aggregates says for every metric and window kind over [first, end)."""
    found: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    rows: list[dict[str, Any]] = []
    kinds = [("orders", w) for w in ("1m", "1h", "1d", "5m/1m", "session")]
    kinds += [("events", w) for w in ("1m", "1h", "1d", "5m/1m")]
    for metric, window in kinds:
        start_ms = first_ms - first_ms % (24 * HOUR) if window == "1d" else first_ms
        response = await api.get(
            "/aggregates",
            params={"metric": metric, "window": window, "start": iso(start_ms), "end": iso(end_ms)},
            headers=headers,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        dimension = body["dimensions"][0]
        for w in body["windows"]:
            start = round(datetime.fromisoformat(w["start"]).timestamp() * 1000)
            found[(metric, window, start, w["group"][dimension])] = (
                w["count"],
                w["sum"],
                w["min"],
                w["max"],
                w["distinct"],
                w["p50"],
                w["p95"],
                w["p99"],
            )
            rows.append({**w, "metric": metric, "window": window})
    return found, rows


async def late_ids(api: httpx.AsyncClient, headers: dict[str, str]) -> set[str]:
    ids: set[str] = set()
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/late-events", params=params, headers=headers)).json()
        ids |= {e["id"] for e in page["events"]}
        cursor = page["next_cursor"]
        if not cursor:
            return ids


async def compact_all(aws: AwsClients, bucket: str) -> None:
    """Compact every flush partition, as the compaction jobs would."""
    s3 = await aws.get("s3")

    async def checkpoint(state: Any) -> None:
        return None

    for owner, day, hour in await flush_partitions(s3, bucket):
        while (
            await compact_partition(
                s3,
                bucket,
                Partition(owner, day, hour),
                resume=None,
                checkpoint=checkpoint,
                min_file_bytes=128 * 1024 * 1024,
                max_files=20_000,
            )
        ).more:
            pass


async def test_every_aggregate_equals_duckdb_over_the_distinct_events_despite_kills(
    aws: AwsClients,
    moto: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    analytics_workers: list[AnalyticsWorker],
    tmp_path: Path,
) -> None:
    platform = await provision_analytics(aws, moto.endpoint)
    alice = platform.bearer("alice")
    rng = random.Random(2026)
    now_ms = int(time.time() * 1000)
    now_ms -= now_ms % MINUTE
    events = generate(now_ms, rng)
    sends = [*events, *rng.sample(events, len(events) // 5)]  # 20% twice
    rng.shuffle(sends)
    by_path: dict[str, list[dict[str, Any]]] = {"http": [], "queue": []}
    for event in sends:
        by_path["queue" if int(event["id"][1:]) % 2 else "http"].append(event)

    sqs = await aws.get("sqs")
    url = (await sqs.get_queue_url(QueueName=platform.names.queue))["QueueUrl"]
    async with analytics_api(monkeypatch, platform, **SETTINGS) as (_, api):
        assert (await api.put("/metrics/orders", json=ORDERS, headers=alice)).status_code == 200
        await send_to_queue(aws, url, by_path["queue"])
        for name in ("a", "b"):
            analytics_workers.append(
                AnalyticsWorker(platform, tmp_path, name, **SETTINGS, **WORKER_ENV)
            )
        kills, _ = await asyncio.gather(
            chaos(platform, tmp_path, analytics_workers, aws, url),
            post_all(api, alice, by_path["http"]),
        )
        assert kills >= 1

        late = await late_ids(api, alice)
        very_late = {e["id"] for i, e in enumerate(events) if i % 20 == 0}
        assert late <= very_late  # only events past the retention are set aside
        counted = [e for e in events if e["id"] not in late]
        expected = oracle(counted)

        # Every window an idle source no longer holds closes: none ending before now stays
        # open once the sources are idle.
        store = AnalyticsStore(await aws.get("dynamodb"), platform.names.table or "")
        deadline = time.monotonic() + 90
        while any(
            m.start + WINDOWS[m.window].size_ms <= now_ms for m in await store.open_windows()
        ):
            assert time.monotonic() < deadline, "windows stayed open"
            await asyncio.sleep(0.5)
        first_ms, end_ms = now_ms - 6 * HOUR, now_ms + HOUR
        found, rows = await served(api, alice, first_ms, end_ms)
    held = [
        r
        for r in rows
        if not r["final"]
        and r["window"] != "session"
        and datetime.fromisoformat(r["end"]).timestamp() * 1000 <= now_ms
    ]
    assert not held, held[:3]
    differences = {
        key: (found.get(key), expected.get(key))
        for key in set(found) | set(expected)
        if found.get(key) != expected.get(key)
    }
    assert not differences, sorted(differences.items(), key=str)[:10]
    assert sum(v[0] for k, v in found.items() if k[:2] == ("events", "1d")) == len(counted)

    bucket = platform.names.bucket or ""
    await compact_all(aws, bucket)
    lake = await read_rows(
        await aws.get("s3"),
        bucket,
        "alice",
        datetime.fromtimestamp(first_ms / 1000, UTC),
        datetime.fromtimestamp(end_ms / 1000, UTC) + timedelta(hours=1),
        dedupe=False,
    )
    ids = lake.column("id").to_pylist()
    assert len(ids) == len(set(ids)) == len(events)
