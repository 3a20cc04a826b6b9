"""`POST /query` against a real moto server: the caller's own events only, SQL that reaches
for files or other owners refused with problem+json, bounds in range and rows, and the API's
start submitting the compaction scheduler once."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from longhaul.api.app import create_app
from longhaul.aws.clients import AwsClients
from longhaul.config import load_settings
from longhaul.jobs import JobState, JobStore
from longhaul.local.platform import LocalAuth, role_environment
from longhaul.local.provision import provision
from longhaul.spec import ResourceNames
from longhaul_analytics.analytics.lake import LakeRow, write_flush
from longhaul_analytics.api.query import _start_scheduler
from longhaul_analytics.api.query import router as query_router
from longhaul_analytics.config import AnalyticsSettings
from longhaul_analytics.spec import SPEC
from longhaul_analytics.worker.jobs import jobs
from longhaul_analytics.worker.lake_jobs import SCHEDULE, SYSTEM_OWNER
from tests.support.app import forge
from tests.support.moto import MotoServer

pytestmark = pytest.mark.integration

REGION = "us-east-1"
T0 = datetime(2026, 3, 1, 10, tzinfo=UTC)
RANGE = {"start": T0.isoformat(), "end": (T0 + timedelta(hours=3)).isoformat()}


@dataclass
class Api:
    """The analytics API (the query router alone) with its lifespan running, a client, and
    its environment."""

    app: FastAPI
    client: httpx.AsyncClient
    env: str
    auth: LocalAuth


@pytest.fixture(scope="module")
async def api(moto: MotoServer) -> AsyncIterator[Api]:
    """The analytics spec provisioned once for these tests in an environment of its own,
    and its API started once (each test's callers are its own)."""
    env = "q" + uuid.uuid4().hex[:8]
    aws = AwsClients(REGION)
    try:
        report = await provision(aws, [SPEC], env=env, region=REGION)
    finally:
        await aws.close()
    assert report.auth is not None
    variables = role_environment(
        SPEC,
        "api",
        env=env,
        region=REGION,
        endpoint=moto.endpoint,
        auth=report.auth,
        host="127.0.0.1",
    )
    with pytest.MonkeyPatch.context() as patch:
        for key, value in variables.items():
            patch.setenv(key, value)
        settings = load_settings(AnalyticsSettings)
        app = create_app(SPEC, settings, role="api", routers=[query_router], jobs=jobs)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://a.test") as client:
                yield Api(app, client, env, report.auth)


@contextmanager
def limits(api: Api, **changes: Any) -> Iterator[None]:
    """The API's settings with `changes`, for the block."""
    settings = api.app.state.settings
    api.app.state.settings = settings.model_copy(update=changes)
    try:
        yield
    finally:
        api.app.state.settings = settings


def bearer(api: Api, sub: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {forge(api.auth, sub=sub)}"}


async def seed(aws: AwsClients, env: str, alice: str = "alice", bob: str = "bob") -> None:
    """Alice's 30 events (ten of them flushed twice) and bob's 7, in the same hours."""
    bucket = str(ResourceNames.of(SPEC, env).bucket)
    s3 = await aws.get("s3")

    def row(owner: str, n: int) -> LakeRow:
        return LakeRow(
            owner=owner,
            id=f"{owner}-{n}",
            name="buy" if n % 2 else "view",
            time=T0 + timedelta(minutes=5 * n),
            received_at=T0 + timedelta(minutes=5 * n, seconds=1),
            source="client",
            properties=json.dumps({"amount": n}),
        )

    rows = [row(alice, n) for n in range(30)]
    await write_flush(s3, bucket, rows[:20])
    await write_flush(s3, bucket, rows[10:])  # ten of them twice
    await write_flush(s3, bucket, [row(bob, n) for n in range(7)])


async def test_a_caller_queries_their_own_events_and_never_anothers(
    aws: AwsClients, api: Api
) -> None:
    await seed(aws, api.env)
    answer = await api.client.post(
        "/query",
        json={
            "sql": "SELECT owner, name, count(*) AS n, sum(CAST(json_extract(properties, "
            "'$.amount') AS INT)) AS total FROM events GROUP BY ALL ORDER BY name",
            **RANGE,
        },
        headers=bearer(api, "alice"),
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["columns"] == ["owner", "name", "n", "total"]
    assert body["rows"] == [
        ["alice", "buy", 15, sum(range(1, 30, 2))],
        ["alice", "view", 15, sum(range(0, 30, 2))],
    ]  # each event once, though ten were flushed twice
    assert body["loaded_rows"] == 30
    assert not body["truncated"]

    mine = await api.client.post(
        "/query",
        json={"sql": "SELECT DISTINCT owner FROM events", **RANGE},
        headers=bearer(api, "bob"),
    )
    assert mine.json()["rows"] == [["bob"]]

    limited = await api.client.post(
        "/query",
        json={"sql": "SELECT id, time FROM events ORDER BY time", **RANGE},
        headers=bearer(api, "alice"),
    )
    assert limited.status_code == 200
    assert limited.json()["rows"][0] == ["alice-0", "2026-03-01T10:00:00+00:00"]
    assert len(limited.json()["rows"]) == 30

    anonymous = await api.client.post("/query", json={"sql": "SELECT 1", **RANGE})
    assert anonymous.status_code == 401


# One of each kind through HTTP; tests/unit/analytics/test_sql.py holds every case.
REFUSED = [
    ("SELECT * FROM read_csv('/etc/passwd')", "table functions are not allowed"),
    ("SELECT * FROM '/etc/passwd'", "only the table events"),
    ("COPY events TO '/tmp/leak.csv'", "only a single SELECT"),
    ("SELECT * FROM events WHERE id IN (SELECT id FROM read_parquet('lake/**'))", "table"),
    ("SELECT getenv('AWS_SECRET_ACCESS_KEY')", "getenv() is not allowed"),
    ("SELECT * FROM events_of_bob", "only the table events"),
]


async def test_sql_reaching_for_files_or_other_owners_is_refused_with_a_reason(
    api: Api,
) -> None:
    for sql, reason in REFUSED:
        answer = await api.client.post(
            "/query", json={"sql": sql, **RANGE}, headers=bearer(api, "mallory")
        )
        assert answer.status_code == 400, sql
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert reason in answer.json()["detail"], sql


async def test_bounds_on_range_rows_and_time_answer_400_or_truncate(
    aws: AwsClients, api: Api
) -> None:
    await seed(aws, api.env, alice="carol", bob="dave")
    alice = bearer(api, "carol")
    with limits(
        api,
        query_max_rows=4,
        query_max_range_s=4 * 3600,
        query_max_loaded_rows=25,
        query_timeout_s=0.5,
    ):
        short = {"start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat()}
        cut = await api.client.post(
            "/query", json={"sql": "SELECT id FROM events", **short}, headers=alice
        )
        assert cut.status_code == 200
        assert cut.json()["row_count"] == 4
        assert cut.json()["truncated"]

        too_long = {"start": T0.isoformat(), "end": (T0 + timedelta(days=1)).isoformat()}
        wide = await api.client.post("/query", json={"sql": "SELECT 1", **too_long}, headers=alice)
        assert wide.status_code == 400
        assert "over the limit of 14400 s" in wide.json()["detail"]

        full = await api.client.post("/query", json={"sql": "SELECT 1", **RANGE}, headers=alice)
        assert full.status_code == 400
        assert "holds 30 events, over the limit of 25" in full.json()["detail"]

        joined = ", ".join(f"events e{i}" for i in range(12))
        slow = await api.client.post(
            "/query",
            json={"sql": f"SELECT count(*) FROM {joined}", **short},  # noqa: S608
            headers=alice,
        )
        assert slow.status_code == 400
        assert "past its time limit" in slow.json()["detail"]


async def test_the_api_submits_the_compaction_scheduler_once(aws: AwsClients, api: Api) -> None:
    async with _start_scheduler(api.app):  # a second start (another task, a deploy)
        pass
    names = ResourceNames.of(SPEC, api.env)
    store = JobStore(await aws.get("dynamodb"), str(names.table))
    page = await store.page(SYSTEM_OWNER)
    assert [(j.type, j.state) for j in page.jobs] == [(SCHEDULE, JobState.QUEUED)]
