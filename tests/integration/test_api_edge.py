"""The edge every service shares: problem+json for each error class, correlation ids,
readiness that follows moto's health without following the request rate, and secrets that
never reach a log line."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from longhaul.aws.clients import AwsClients
from longhaul.local.provision import provision
from longhaul.local.token import dev_token
from tests.conftest import REGION, LogCapture, Platform
from tests.support.app import running_app
from tests.support.echo.spec import SPEC as ECHO
from tests.support.moto import MotoServer

PROBLEM = "application/problem+json"


async def test_errors_are_problem_json_with_status_title_and_correlation_id(
    aws: AwsClients, platform: Platform, monkeypatch: pytest.MonkeyPatch, json_logs: LogCapture
) -> None:
    token = await dev_token(aws, platform.env)
    auth = {"Authorization": f"Bearer {token}"}
    async with running_app(monkeypatch, platform, LONGHAUL_MAX_BODY_BYTES="2048") as (_, client):
        missing = await client.get("/nowhere")
        wrong_method = await client.delete("/messages")
        invalid = await client.post(
            "/messages", json={"text": "", "tags": [1, 2, 3, 4, 5, 6]}, headers=auth
        )
        too_big = await client.post("/messages", content=b"x" * 4096, headers=auth)
        crash = await client.get("/boom", headers={"X-Correlation-ID": "crash-1"})

    for response, status in ((missing, 404), (wrong_method, 405), (invalid, 422), (too_big, 413)):
        assert response.status_code == status
        assert response.headers["content-type"] == PROBLEM
        body = response.json()
        assert body["status"] == status
        assert body["type"] == "about:blank"
        assert body["title"]
        assert body["correlation_id"] == response.headers["x-correlation-id"]

    fields = {e["field"] for e in invalid.json()["errors"]}
    assert {"body.text", "body.tags"} <= fields

    assert crash.status_code == 500
    assert crash.headers["content-type"] == PROBLEM
    assert crash.json() == {
        "type": "about:blank",
        "title": "Internal Server Error",
        "status": 500,
        "correlation_id": "crash-1",
    }
    assert "hunter2" not in crash.text
    [logged] = [r for r in json_logs.records if r["message"] == "unhandled error"]
    assert logged["correlation_id"] == "crash-1"
    assert "RuntimeError" in str(logged["exception"])


async def test_correlation_id_is_taken_from_the_header_or_created(
    platform: Platform, monkeypatch: pytest.MonkeyPatch, json_logs: LogCapture
) -> None:
    async with running_app(monkeypatch, platform) as (_, client):
        given = await client.get("/healthz", headers={"X-Correlation-ID": "abc-123"})
        created = await client.get("/healthz")
        hostile = await client.get("/healthz", headers={"X-Correlation-ID": "x" * 500})
    assert given.headers["x-correlation-id"] == "abc-123"
    assert len(created.headers["x-correlation-id"]) == 32
    assert hostile.headers["x-correlation-id"] != "x" * 500
    access = [r for r in json_logs.records if r["logger"] == "longhaul.access"]
    assert {r["correlation_id"] for r in access} >= {"abc-123", created.headers["x-correlation-id"]}
    assert all(r["status"] == 200 and r["trace_id"] for r in access)


async def test_readyz_fails_while_moto_is_down_and_recovers_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    own = MotoServer().start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", own.endpoint)
    aws = AwsClients(REGION)
    env = "r" + uuid.uuid4().hex[:8]
    try:
        report = await provision(aws, [ECHO], env=env, region=REGION)
        assert report.auth is not None
        platform = Platform(env=env, auth=report.auth, endpoint=own.endpoint)
        # Every ask runs the checks here; readyz_runs_its_checks_once_per_interval shows
        # the cache.
        async with running_app(monkeypatch, platform, LONGHAUL_READINESS_CACHE_S="0") as (
            _,
            client,
        ):
            assert (await client.get("/readyz")).json()["checks"] == {
                "bus": "ok",
                "table": "ok",
                "queue": "ok",
                "bucket": "ok",
            }
            own.stop()
            down = await client.get("/readyz")
            alive = await client.get("/healthz")
            own.start()
            await provision(aws, [ECHO], env=env, region=REGION)  # moto keeps no state
            back = await client.get("/readyz")
    finally:
        own.stop()
        await aws.close()
    assert down.status_code == 503
    assert down.headers["content-type"] == PROBLEM
    assert set(down.json()["checks"]) == {"bus", "table", "queue", "bucket"}
    assert all(result != "ok" for result in down.json()["checks"].values())
    assert alive.status_code == 200, "liveness does not depend on AWS"
    assert back.status_code == 200


async def test_readyz_runs_its_checks_once_per_interval_however_often_it_is_asked(
    moto: MotoServer, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    moto.faults.clear()
    async with running_app(monkeypatch, platform, LONGHAUL_READINESS_CACHE_S="30") as (_, client):
        # Counts every AWS call naming this environment's resources, delaying none.
        counter = moto.faults.inject("*", "latency", seconds=0, match=platform.env)
        try:
            ready = await asyncio.gather(*(client.get("/readyz") for _ in range(50)))
            alive = await asyncio.gather(*(client.get("/healthz") for _ in range(50)))
            calls = moto.faults.matched(counter)
        finally:
            moto.faults.clear()
    assert {r.status_code for r in ready} == {200}
    assert {r.status_code for r in alive} == {200}, "liveness needs no token"
    assert calls == 4, "one run of the four checks (bus, table, queue, bucket) for 50 asks"


async def test_secret_value_never_appears_in_any_log_line(
    aws: AwsClients, platform: Platform, monkeypatch: pytest.MonkeyPatch, json_logs: LogCapture
) -> None:
    import logging

    secret_id = f"longhaul/{platform.env}/echo/api-key"
    value = "s3cr3t-" + uuid.uuid4().hex
    await (await aws.get("secretsmanager")).put_secret_value(SecretId=secret_id, SecretString=value)
    async with running_app(monkeypatch, platform) as (app, client):
        secret = app.state.secrets["api-key"]
        assert secret.get_secret_value() == value, "the service got the value from Secrets Manager"
        log = logging.getLogger("echo")
        log.info("settings %s secrets %r secret %s", app.state.settings, app.state.secrets, secret)
        log.warning("a careless line: %s", secret.get_secret_value())
        log.error("in a field", extra={"leak": value, "nested": {"v": value}})
        try:
            raise ValueError(f"failed with key {value}")
        except ValueError:
            log.exception("in a traceback")
        await client.get("/healthz", headers={"X-Correlation-ID": "c1"})
    assert "a careless line" in json_logs.text, "the lines were written"
    assert value not in json_logs.text
    assert json_logs.text.count("[REDACTED]") >= 4
    assert secret_id in app.state.settings.secret_ids.values(), "only the id is in the environment"


async def test_streamed_body_over_the_limit_is_413_problem_json(
    aws: AwsClients, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = await dev_token(aws, platform.env)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b"y" * 1024

    async with running_app(monkeypatch, platform, LONGHAUL_MAX_BODY_BYTES="2048") as (_, client):
        response = await client.post(
            "/messages", content=chunks(), headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM
    assert "2048-byte limit" in response.json()["detail"]
