"""The engine interrupted between its writes, against a real moto server: a batch whose
value packs were written but whose markers were not (the process died) is retried
regrouped, and each event still counts once; an event packed while on time whose retry
finds it past retention counts nowhere and sits in the late-events table."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import pytest

from longhaul.aws.clients import AwsClients
from longhaul_analytics.analytics.closer import window_values
from longhaul_analytics.analytics.engine import engine_of
from longhaul_analytics.analytics.ingest import Engine
from longhaul_analytics.analytics.model import MetricSpec, Record, digest
from longhaul_analytics.analytics.windows import PANE_MS
from longhaul_analytics.config import AnalyticsSettings
from tests.integration.analytics.engine_support import provision_analytics
from tests.support.moto import MotoServer

pytestmark = pytest.mark.integration

OWNER = "ada"


class Died(Exception):
    """The process stopped here."""


async def crashing_engine(aws: AwsClients, moto: MotoServer, **fields: float) -> Engine:
    """An engine (its settings' `fields` given) whose first write of markers raises, as if
    the process died just before."""
    platform = await provision_analytics(aws, moto.endpoint)
    settings = AnalyticsSettings.model_validate({**platform.environment("api"), **fields})
    engine = await engine_of(aws, settings)
    await engine.store.put_metric(
        OWNER, "orders", MetricSpec(event="order", dimensions=["country"], value="amount"), 50
    )
    write = engine.store.write
    died = False

    async def write_once_then_die(
        puts: Sequence[dict[str, Any]], deletes: Sequence[dict[str, Any]] = ()
    ) -> None:
        nonlocal died
        if not died and puts and all(p["PK"]["S"].startswith("AN#E#") for p in puts):
            died = True
            raise Died
        await write(puts, deletes)

    engine.store.write = write_once_then_die  # type: ignore[method-assign]
    return engine


def order(id_: str, time_ms: int, amount: int, country: str = "fr") -> Record:
    properties = {"amount": amount, "country": country}
    return Record(
        OWNER,
        id_,
        "order",
        time_ms,
        properties,
        "client",
        time_ms,
        digest("order", time_ms, properties),
    )


async def test_a_batch_retried_regrouped_after_dying_before_its_markers_counts_each_event_once(
    aws: AwsClients, moto: MotoServer
) -> None:
    engine = await crashing_engine(aws, moto)
    pane = int(time.time() * 1000) - 3 * PANE_MS
    pane -= pane % PANE_MS
    batch = [order(f"o{i}", pane + i * 100, amount=i + 1) for i in range(30)]
    with pytest.raises(Died):
        await engine.ingest(batch)  # packs of 30 written, no marker
    # the client retries in other batches: the packs now hold other sets of events
    first = await engine.ingest([*batch[:10], order("o-new", pane + 5_000, amount=1000)])
    second = await engine.ingest(batch[10:])
    assert len(first.accepted) == 11, "none was marked yet"
    assert len(second.accepted) == 20
    again = await engine.ingest(batch)
    assert len(again.duplicates) == 30
    assert not again.accepted

    values = await window_values(engine.store, OWNER, "orders", pane, pane)
    ids = [v.id for v in values]
    assert sorted(ids) == sorted([r.id for r in batch] + ["o-new"]), "each event once"
    assert sum(v.value or 0 for v in values) == sum(range(1, 31)) + 1000


async def test_an_event_packed_on_time_then_found_past_retention_counts_nowhere(
    aws: AwsClients, moto: MotoServer
) -> None:
    engine = await crashing_engine(aws, moto, allowed_lateness_s=0, retention_s=60)
    now = int(time.time() * 1000)
    old = now - 30 * PANE_MS
    old -= old % PANE_MS
    early = [order("early", old + 1_000, amount=7), order("kept", old + 2_000, amount=5)]
    with pytest.raises(Died):
        await engine.ingest(early)  # packed on time, never marked
    await engine.ingest([order("kept", old + 2_000, amount=5)])
    # the source's watermark moves 20 minutes past them: "early" is now past retention
    await engine.ingest([order("push", now - 60_000, amount=1)])
    retry = await engine.ingest([early[0]])
    assert retry.late == ["early"], retry

    values = await window_values(engine.store, OWNER, "orders", old, old)
    assert [v.id for v in values] == ["kept"], "the late event is in no window"
    late, _ = await engine.store.late_events(OWNER, limit=10, cursor=None)
    assert [e["id"] for e in late] == ["early"]
