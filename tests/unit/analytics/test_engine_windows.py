"""The engine's pure parts: which windows hold an event, sessions, exact aggregates whose
percentiles are DuckDB's quantile_disc, and the record of a platform event."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import duckdb
import pytest

from longhaul.events import Envelope
from longhaul_analytics.analytics.aggregates import Value, percentile, summarize
from longhaul_analytics.analytics.windows import WINDOWS, sessions
from longhaul_analytics.worker.handlers import record_of

MINUTE = 60_000


@pytest.mark.parametrize("name", sorted(WINDOWS))
def test_an_event_is_in_exactly_the_windows_that_span_it(name: str) -> None:
    spec = WINDOWS[name]
    rng = random.Random(name)
    for _ in range(200):
        t = rng.randint(0, 10**13)
        starts = spec.starts_of(t)
        assert len(starts) == spec.size_ms // spec.slide_ms
        assert all(s <= t < s + spec.size_ms and s % spec.slide_ms == 0 for s in starts)


def test_sessions_split_where_the_gap_is_exceeded() -> None:
    times = [0, 100, 400, 1000, 1200, 5000]
    assert sessions(times, 300) == [(0, 400), (1000, 1200), (5000, 5000)]
    assert sessions(reversed(times), 5000) == [(0, 5000)]


def test_percentiles_are_duckdbs_quantile_disc() -> None:
    rng = random.Random(3)
    db = duckdb.connect()
    for n in (1, 2, 3, 7, 20, 99, 100, 101, 1000):
        values = sorted(float(rng.randint(0, 50)) for _ in range(n))
        expected = db.execute(
            "SELECT quantile_disc(v, 0.5), quantile_disc(v, 0.95), quantile_disc(v, 0.99) "
            "FROM (SELECT unnest(?::DOUBLE[]) AS v)",
            [values],
        ).fetchone()
        assert (percentile(values, 50), percentile(values, 95), percentile(values, 99)) == expected


def test_a_summary_counts_every_event_and_ranks_only_numbers() -> None:
    values = [
        Value("g", "a", 1, 5.0, "u1"),
        Value("g", "b", 2, None, "u1"),
        Value("g", "c", 3, 1.0, None),
        Value("g", "d", 4, 9.0, "u2"),
    ]
    summary = summarize(values, with_distinct=True)
    assert (summary.count, summary.sum, summary.min, summary.max) == (4, 15.0, 1.0, 9.0)
    assert (summary.distinct, summary.p50, summary.p99) == (2, 5.0, 9.0)
    assert summarize([], with_distinct=False).sum is None


def test_a_platform_event_is_owned_by_the_owner_its_data_names_or_the_platform() -> None:
    def envelope(data: dict[str, object]) -> Envelope:
        return Envelope(
            type="media.transcode.completed",
            version=1,
            source="longhaul.media",
            time=datetime(2026, 12, 1, tzinfo=UTC),
            correlation_id="c",
            data=data,
        )

    owned = record_of(envelope({"owner": "alice", "outputs": 3}), "_platform")
    assert (owned.owner, owned.properties, owned.source) == (
        "alice",
        {"outputs": 3},
        "longhaul.media",
    )
    unowned = record_of(envelope({"outputs": 3}), "_platform")
    assert (unowned.owner, unowned.properties) == ("_platform", {"outputs": 3})
    assert owned.digest == unowned.digest  # the same body, whoever owns it
