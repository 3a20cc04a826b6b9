"""The console's server, without a browser: it forwards a call to the named service with
the caller's Authorization header unchanged (the service decides what the caller sees),
relays the answer's status and body, answers problem+json for an unknown or silent service,
and offers the dev token only when it was built with one (under the dev runner)."""

from __future__ import annotations

import json

import httpx

from longhaul.console import ConsoleConfig, create_app

SERVICES = {"echo": "http://echo.internal:18100", "media": "http://media.internal:8110"}


def upstream(seen: list[httpx.Request]) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "media.internal":
            raise httpx.ConnectError("refused", request=request)
        body = json.dumps({"path": request.url.path}).encode()
        return httpx.Response(  # a stream, as a real connection's body is
            202,
            stream=httpx.ByteStream(body),
            headers={"Content-Type": "application/json", "Location": "/jobs/j1", "X-Secret": "no"},
        )

    return httpx.MockTransport(answer)


async def console(config: ConsoleConfig, seen: list[httpx.Request]) -> httpx.AsyncClient:
    app = create_app(config, transport=upstream(seen))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console")


async def test_a_call_reaches_its_service_with_the_callers_token_unchanged() -> None:
    seen: list[httpx.Request] = []
    async with await console(ConsoleConfig(services=SERVICES), seen) as client:
        answer = await client.post(
            "/api/echo/jobs?state=queued&limit=5",
            json={"type": "work"},
            headers={"Authorization": "Bearer the-callers-token", "Cookie": "c=1"},
        )
    assert answer.status_code == 202
    assert answer.json() == {"path": "/jobs"}
    assert answer.headers["location"] == "/jobs/j1"
    assert "x-secret" not in answer.headers  # only the headers a page needs come back
    [request] = seen
    assert str(request.url) == "http://echo.internal:18100/jobs?state=queued&limit=5"
    assert request.headers["authorization"] == "Bearer the-callers-token"
    assert "cookie" not in request.headers
    assert request.content == b'{"type":"work"}'


async def test_an_unknown_or_silent_service_is_a_problem_document() -> None:
    seen: list[httpx.Request] = []
    async with await console(ConsoleConfig(services=SERVICES), seen) as client:
        unknown = await client.get("/api/billing/jobs")
        silent = await client.get("/api/media/jobs")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    assert silent.status_code == 502
    assert silent.json()["detail"] == "the media service is not answering"


async def test_the_dev_token_is_offered_only_when_the_dev_runner_asks_for_it() -> None:
    async def token() -> str:
        return "dev-token-value"

    seen: list[httpx.Request] = []
    async with await console(ConsoleConfig(services=SERVICES), seen) as client:
        assert (await client.get("/dev-token")).status_code == 404
        assert (await client.get("/console/config")).json() == {
            "services": ["echo", "media"],
            "api_base": "api/",
            "dev_token": False,
            "media_proxy": False,
        }
    dev = ConsoleConfig(services=SERVICES, dev_token=token)
    async with await console(dev, seen) as client:
        answer = await client.get("/dev-token")
        assert (await client.get("/console/config")).json()["dev_token"] is True
    assert answer.json() == {"token": "dev-token-value", "user": "dev", "local_only": True}
    assert answer.headers["cache-control"] == "no-store"


async def test_media_is_fetched_only_from_the_configured_store() -> None:
    """/media fetches a presigned URL for the page (Range passed on) only when the URL is
    of a configured S3 origin: the console is no open proxy."""
    seen: list[httpx.Request] = []

    def store(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            206,
            stream=httpx.ByteStream(b"ts"),
            headers={"Content-Type": "video/mp2t", "Content-Range": "bytes 0-1/9"},
        )

    config = ConsoleConfig(services=SERVICES, media_origins=("http://127.0.0.1:4566",))
    app = create_app(config, transport=httpx.MockTransport(store))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as client:
        segment = "http://127.0.0.1:4566/bucket/hls/seg_00000.ts?X-Amz-Signature=abc"
        answer = await client.get("/media", params={"u": segment}, headers={"Range": "bytes=0-1"})
        refused = [
            await client.get("/media", params={"u": url})
            for url in (
                "http://169.254.169.254/latest/meta-data/",
                "http://127.0.0.1:4567/bucket/x",
                "file:///etc/passwd",
            )
        ]
    assert answer.status_code == 206
    assert answer.content == b"ts"
    assert answer.headers["content-range"] == "bytes 0-1/9"
    [request] = seen
    assert str(request.url) == segment
    assert request.headers["range"] == "bytes=0-1"
    assert [r.status_code for r in refused] == [403, 403, 403]
