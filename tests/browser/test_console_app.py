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
        }
    dev = ConsoleConfig(services=SERVICES, dev_token=token)
    async with await console(dev, seen) as client:
        answer = await client.get("/dev-token")
        assert (await client.get("/console/config")).json()["dev_token"] is True
    assert answer.json() == {"token": "dev-token-value", "user": "dev", "local_only": True}
    assert answer.headers["cache-control"] == "no-store"
