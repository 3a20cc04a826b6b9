"""The SQL sandbox: what it refuses (parsed and walked, never string-matched), what it runs,
and its bounds in rows and time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from longhaul_analytics.analytics.lake import SCHEMA
from longhaul_analytics.analytics.sql import QueryRefused, check_sql, run_query

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def events(count: int = 6) -> pa.Table:
    """One owner's rows, as read_rows hands them over."""
    rows = {
        "owner": ["alice"] * count,
        "id": [f"e{i}" for i in range(count)],
        "name": ["click" if i % 2 else "view" for i in range(count)],
        "time": [T0 + timedelta(minutes=i) for i in range(count)],
        "received_at": [T0 + timedelta(minutes=i, seconds=1) for i in range(count)],
        "source": ["client"] * count,
        "properties": [f'{{"value": {i}}}' for i in range(count)],
    }
    schema = pa.schema([pa.field("owner", pa.string()), *SCHEMA])
    return pa.Table.from_pydict(rows, schema)


def run(sql: str, **bounds: float) -> tuple[list[str], list[tuple[object, ...]], bool]:
    outcome = run_query(
        events(),
        sql,
        max_rows=int(bounds.get("max_rows", 100)),
        timeout_s=bounds.get("timeout_s", 5.0),
        memory_mib=128,
    )
    return outcome.columns, outcome.rows, outcome.truncated


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("SELECT * FROM read_csv('/etc/passwd')", "table functions are not allowed (read_csv)"),
        ("SELECT * FROM '/etc/passwd'", "only the table events"),
        ("SELECT * FROM read_parquet('s3://other/lake/*.parquet')", "table functions"),
        ("SELECT * FROM 'https://example.com/x.csv'", "only the table events"),
        ("COPY events TO '/tmp/out.csv'", "only a single SELECT"),
        ("ATTACH '/tmp/other.db' AS other", "only a single SELECT"),
        ("INSTALL httpfs", "only a single SELECT"),
        ("LOAD httpfs", "only a single SELECT"),
        ("PRAGMA version", "only a single SELECT"),
        ("SET enable_external_access = true", "only a single SELECT"),
        ("SELECT 1; SELECT 2", "only a single SELECT"),
        ("SELECT 1; COPY events TO '/tmp/x'", "only a single SELECT"),
        ("SELECT * FROM events WHERE id IN (SELECT * FROM glob('/*'))", "(glob)"),
        ("SELECT (SELECT count(*) FROM read_text('/etc/hostname'))", "(read_text)"),
        ("SELECT getenv('AWS_SECRET_ACCESS_KEY')", "getenv() is not allowed"),
        ("SELECT current_setting('temp_directory')", "current_setting() is not allowed"),
        ("SELECT * FROM query('SELECT 1')", "(query)"),
        ("SELECT * FROM duckdb_settings()", "(duckdb_settings)"),
        ("SELECT * FROM information_schema.tables", "only the table events"),
        ("SELECT * FROM memory.main.events", "only the table events"),
        ("SELECT * FROM (WITH x AS (SELECT 1) SELECT 1), x", "not 'x'"),  # out of its scope
        ('WITH "/etc/passwd" AS (SELECT 1) SELECT * FROM "/etc/passwd"', "plain identifier"),
        ("DESCRIBE events", "not allowed"),
        ("SELECT * FROM other_owner_events", "only the table events"),
        ("DELETE FROM events", "only a single SELECT"),
        ("SELEC 1", "does not parse"),
    ],
)
def test_sql_that_reaches_beyond_events_is_refused_with_its_reason(sql: str, reason: str) -> None:
    with pytest.raises(QueryRefused) as refused:
        check_sql(sql)
    assert reason in str(refused.value)


def test_aggregates_windows_ctes_and_json_over_events_run() -> None:
    columns, rows, truncated = run(
        "WITH v AS (SELECT name, CAST(json_extract(properties, '$.value') AS INT) AS value "
        "FROM events) SELECT name, count(*) AS n, sum(value) AS total, "
        "max(value) - min(value) AS spread FROM v GROUP BY name ORDER BY name"
    )
    assert columns == ["name", "n", "total", "spread"]
    assert rows == [("click", 3, 1 + 3 + 5, 4), ("view", 3, 0 + 2 + 4, 4)]
    assert not truncated
    _, ranked, _ = run(
        "SELECT id, row_number() OVER (PARTITION BY name ORDER BY time DESC) AS r "
        "FROM events QUALIFY r = 1 ORDER BY id"
    )
    assert ranked == [("e4", 1), ("e5", 1)]
    _, hours, _ = run("SELECT date_trunc('hour', time) AS h, count(*) FROM events GROUP BY h")
    assert hours == [(T0, 6)]


def test_rows_past_the_bound_are_cut_and_flagged() -> None:
    _, rows, truncated = run("SELECT id FROM events ORDER BY id", max_rows=4)
    assert [r[0] for r in rows] == ["e0", "e1", "e2", "e3"]
    assert truncated


def test_a_query_past_its_time_limit_is_interrupted() -> None:
    # 6^20 rows to count in constant memory: only the timer ends it.
    joined = ", ".join(f"events e{i}" for i in range(20))
    with pytest.raises(QueryRefused, match=r"past its time limit of 0\.3 s"):
        run(f"SELECT count(*) FROM {joined}", timeout_s=0.3)  # noqa: S608


def test_a_failing_query_says_why() -> None:
    with pytest.raises(QueryRefused, match=r"the query failed: .*no_such_column"):
        run("SELECT no_such_column FROM events")


def test_the_connection_refuses_files_even_if_the_check_were_bypassed() -> None:
    """The second layer: the connection holds external access off, locked."""
    from longhaul_analytics.analytics.sql import _connect

    con = _connect(events(), 128)
    try:
        for statement in (
            "SELECT * FROM read_csv('/etc/passwd')",
            "SET enable_external_access = true",
            "LOAD httpfs",
        ):
            with pytest.raises(Exception, match=r"disabled|locked|Permission"):
                con.execute(statement)
    finally:
        con.close()


def test_the_service_serves_post_query_and_runs_the_lake_jobs() -> None:
    from longhaul_analytics.api.query import router as query_router
    from longhaul_analytics.service import SERVICE

    assert query_router in SERVICE.routers
    assert SERVICE.jobs is not None
    assert {"compact-lake", "schedule-compaction"} <= set(SERVICE.jobs.names)
    assert SERVICE.jobs.public("compact-lake") is None  # internal: POST /jobs refuses it
