"""The analytics engine's API against a real moto server: a batch counted once per id with
every refusal given its reason, exact windows closed by the idle timeout and revised by a
late event, events past retention kept in the late-events table, the cardinality limit,
owners kept apart, and the stream of window updates."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from longhaul.aws.clients import AwsClients
from longhaul_analytics.analytics.lake import read_rows
from tests.integration.analytics.engine_support import (
    AnalyticsPlatform,
    analytics_api,
    provision_analytics,
)
from tests.support.moto import MotoServer

pytestmark = pytest.mark.integration

ORDERS = {"event": "order", "dimensions": ["country"], "value": "amount", "distinct": "user"}


@pytest.fixture
async def platform(aws: AwsClients, moto: MotoServer) -> AnalyticsPlatform:
    return await provision_analytics(aws, moto.endpoint)


def minute_ago(minutes: int = 2) -> datetime:
    """The start of the minute `minutes` before this one: windows whose end is past."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    return now - timedelta(minutes=minutes)


def order(id_: str, at: datetime, amount: float, user: str, country: str = "fr") -> dict[str, Any]:
    return {
        "id": id_,
        "name": "order",
        "time": at.isoformat(),
        "properties": {"amount": amount, "user": user, "country": country},
    }


async def windows(
    api: httpx.AsyncClient, headers: dict[str, str], metric: str, window: str, start: datetime
) -> list[dict[str, Any]]:
    response = await api.get(
        "/aggregates",
        params={
            "metric": metric,
            "window": window,
            "start": start.isoformat(),
            "end": (start + timedelta(hours=2)).isoformat(),
        },
        headers=headers,
    )
    assert response.status_code == 200, response.text
    return list(response.json()["windows"])


async def final_windows(
    api: httpx.AsyncClient,
    headers: dict[str, str],
    metric: str,
    window: str,
    start: datetime,
    timeout: float = 30,
) -> list[dict[str, Any]]:
    """The windows once every one is final (closed by the idle timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        found = await windows(api, headers, metric, window, start)
        if found and all(w["final"] for w in found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"windows never closed: {found}")
        await asyncio.sleep(0.3)


async def test_a_batch_counts_each_id_once_and_gives_each_refusal_its_reason(
    aws: AwsClients, platform: AnalyticsPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Duplicates in a batch and across batches count once; a reused id with another body,
    a time too far ahead or behind are rejected by id with a reason (207); the closed
    window's every aggregate is exact, and the lake holds each accepted event."""
    alice = platform.bearer("alice")
    t0 = minute_ago(3)
    good = [order(f"o{i}", t0 + timedelta(seconds=i), float(i), f"u{i % 3}") for i in range(1, 11)]
    batch = [
        *good,
        good[0],  # the same event twice in one batch
        {**good[1], "properties": {"amount": 999, "user": "x", "country": "fr"}},  # reused id
        order("future", datetime.now(UTC) + timedelta(hours=1), 1, "u"),
        order("ancient", datetime.now(UTC) - timedelta(days=30), 1, "u"),
    ]
    async with analytics_api(monkeypatch, platform) as (_, api):
        assert (await api.put("/metrics/orders", json=ORDERS, headers=alice)).status_code == 200
        first = await api.post("/events", json={"events": batch}, headers=alice)
        assert first.status_code == 207, first.text
        report = first.json()
        assert sorted(report["accepted"]) == sorted(e["id"] for e in good)
        assert report["duplicates"] == ["o1"]
        reasons = {r["id"]: r["reason"] for r in report["rejected"]}
        assert set(reasons) == {"o2", "future", "ancient"}
        assert "different body" in reasons["o2"]
        assert "future" in reasons["future"]
        assert "past" in reasons["ancient"]

        again = await api.post("/events", json={"events": good}, headers=alice)
        assert again.status_code == 200, again.text
        assert sorted(again.json()["duplicates"]) == sorted(e["id"] for e in good)
        assert again.json()["accepted"] == []

        [closed] = await final_windows(api, alice, "orders", "1m", t0)
        assert closed["group"] == {"country": "fr"}
        assert closed["count"] == 10
        assert closed["sum"] == 55.0
        assert (closed["min"], closed["max"], closed["distinct"]) == (1.0, 10.0, 3)
        assert (closed["p50"], closed["p95"], closed["p99"]) == (5.0, 10.0, 10.0)
        assert closed["revision"] == 1
        assert closed["approximate"] is False
        builtin = await final_windows(api, alice, "events", "1m", t0)
        assert [(w["group"], w["count"]) for w in builtin] == [({"name": "order"}, 10)]

    lake = await read_rows(
        await aws.get("s3"), platform.names.bucket or "", "alice", t0, t0 + timedelta(hours=1)
    )
    assert sorted(lake.column("id").to_pylist()) == sorted(e["id"] for e in good)


async def test_a_late_event_revises_its_closed_window_and_one_past_retention_is_kept_apart(
    platform: AnalyticsPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the window closed, an event within retention makes revision 2 with it counted
    (and the stream says so); one older than watermark - retention lands in GET
    /late-events, in no window; bob sees none of alice's."""
    alice, bob = platform.bearer("alice"), platform.bearer("bob")
    t0 = minute_ago(20)
    async with analytics_api(
        monkeypatch, platform, ANALYTICS_RETENTION_S="300", ANALYTICS_STREAM_LIFETIME_S="20"
    ) as (_, api):
        await api.put("/metrics/orders", json=ORDERS, headers=alice)
        sent = await api.post(
            "/events", json={"events": [order("a1", t0, 10, "u1")]}, headers=alice
        )
        assert sent.status_code == 200, sent.text
        [closed] = await final_windows(api, alice, "orders", "1m", t0)
        assert (closed["count"], closed["revision"]) == (1, 1)

        # The newest event moves the watermark 19 minutes on: t0 is now 14 past retention.
        now = datetime.now(UTC)
        newest = [order("a2", now - timedelta(seconds=30), 1, "u2")]
        report = (await api.post("/events", json={"events": newest}, headers=alice)).json()
        assert report["accepted"] == ["a2"]
        old = [order("a3", t0, 5, "u3")]
        report = (await api.post("/events", json={"events": old}, headers=alice)).json()
        assert report["late"] == ["a3"]
        assert report["accepted"] == []
        late = (await api.get("/late-events", headers=alice)).json()["events"]
        assert [e["id"] for e in late] == ["a3"]
        assert "retention" in late[0]["reason"]

        # Within retention (the watermark is now - 35 s; retention 300 s): a revision, which
        # a subscriber connected before it sees. The subscriber connects once the window's
        # first result is final, so its lifetime is spent on the revision alone. (The
        # in-process client reads a stream whole, so the stream runs its lifetime, long
        # enough for the revision on a loaded machine.)
        inside = minute_ago(3)
        await api.post("/events", json={"events": [order("a4", inside, 7, "u4")]}, headers=alice)
        await final_windows(api, alice, "orders", "1m", inside)
        stream = asyncio.ensure_future(
            api.get(
                "/aggregates/stream",
                params={"metric": "orders", "window": "1m"},
                headers=alice,
                timeout=90,
            )
        )
        await asyncio.sleep(0.5)
        await api.post(
            "/events",
            json={"events": [order("a5", inside + timedelta(seconds=5), 9, "u5")]},
            headers=alice,
        )
        deadline = time.monotonic() + 30
        while True:
            revised = [
                w
                for w in await windows(api, alice, "orders", "1m", inside)
                if w["start"].startswith(inside.isoformat()[:16])
            ]
            if revised and revised[0]["final"] and revised[0]["revision"] == 2:
                break
            assert time.monotonic() < deadline, revised
            await asyncio.sleep(0.3)
        assert (revised[0]["count"], revised[0]["sum"]) == (2, 16.0)
        assert await windows(api, bob, "events", "1m", t0) == []
        assert (await api.get("/late-events", headers=bob)).json()["events"] == []
        body = (await stream).text
    updates = [
        json.loads(line.removeprefix("data: "))
        for line in body.splitlines()
        if line.startswith("data: ")
    ]
    assert any(u["final"] and u["revision"] == 2 and u["count"] == 2 for u in updates), updates


async def test_the_edge_refuses_malformed_batches_whole_and_bounds_groups(
    platform: AnalyticsPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Malformed JSON, a field over its length and a batch over 500 events are refused
    whole (422, 413, problem+json); a metric past its group limit rejects the event that
    would add a group, with a reason naming the limit; no token, 401."""
    alice = platform.bearer("alice")
    t0 = minute_ago(2)
    async with analytics_api(monkeypatch, platform, ANALYTICS_MAX_GROUPS="3") as (_, api):
        bad_json = await api.post(
            "/events",
            content=b"{not json",
            headers={**alice, "Content-Type": "application/json"},
        )
        assert bad_json.status_code == 422
        assert bad_json.headers["content-type"].startswith("application/problem+json")
        long_name = {"events": [{**order("x", t0, 1, "u"), "name": "n" * 129}]}
        assert (await api.post("/events", json=long_name, headers=alice)).status_code == 422
        long_value = {"events": [order("x", t0, 1, "u", country="c" * 257)]}
        assert (await api.post("/events", json=long_value, headers=alice)).status_code == 422
        many = {"events": [order(f"m{i}", t0, 1, "u") for i in range(501)]}
        too_many = await api.post("/events", json=many, headers=alice)
        assert too_many.status_code == 413, too_many.text
        assert (await api.post("/events", json={"events": []})).status_code == 401

        await api.put("/metrics/orders", json=ORDERS, headers=alice)
        countries = ["fr", "de", "it", "es", "fr"]
        batch = [order(f"g{i}", t0, 1, "u", country=c) for i, c in enumerate(countries)]
        response = await api.post("/events", json={"events": batch}, headers=alice)
        assert response.status_code == 207, response.text
        [rejected] = response.json()["rejected"]
        assert rejected["id"] == "g3"
        assert "3 groups" in rejected["reason"]
        assert sorted(response.json()["accepted"]) == ["g0", "g1", "g2", "g4"]
