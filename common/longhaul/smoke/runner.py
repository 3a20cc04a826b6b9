"""Running the smoke test: for each service, the checks every service answers, then the
service's own (`<package>.smoke`, an `async def smoke(ctx)`), one line per step."""

from __future__ import annotations

import importlib
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx

from longhaul.smoke.types import SmokeContext, SmokeFailed
from longhaul.spec import ServiceSpec

__all__ = ["ServiceCheck", "Target", "run_smoke", "service_check"]

ServiceCheck = Callable[[SmokeContext], Awaitable[None]]
REQUEST_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Target:
    """A service and where its API answers: `https://<name>/<service>` through the ALB,
    `http://127.0.0.1:<port>` on `make dev`."""

    spec: ServiceSpec
    base_url: str


def service_check(spec: ServiceSpec) -> ServiceCheck | None:
    """The service's own smoke check, if its package has a `smoke` module."""
    try:
        module = importlib.import_module(f"{spec.package}.smoke")
    except ModuleNotFoundError as exc:
        if exc.name != f"{spec.package}.smoke":
            raise
        return None
    check: ServiceCheck = module.smoke
    return check


async def common_checks(ctx: SmokeContext) -> None:
    """What every service answers: liveness and readiness without a token, its job routes
    refusing a caller without one and serving the smoke user."""
    async with ctx.step("GET /healthz"):
        ctx.expect(await ctx.anonymous.get("/healthz"), 200)
    async with ctx.step("GET /readyz (its table, queue, bucket and bus answer)"):
        ctx.expect(await ctx.anonymous.get("/readyz"), 200)
    async with ctx.step("GET /jobs without a token is refused"):
        ctx.expect(await ctx.anonymous.get("/jobs"), 401)
    async with ctx.step("GET /jobs as the smoke user"):
        page = ctx.expect(await ctx.api.get("/jobs", params={"limit": 1}), 200)
        if not isinstance(page, dict) or not isinstance(page.get("jobs"), list):
            ctx.fail(f"GET /jobs answered {str(page)[:200]}, not a page of jobs")


async def run_smoke(
    targets: Sequence[Target],
    token: str,
    *,
    timeout_s: float,
    say: Callable[[str], None] = print,
    transport: httpx.AsyncBaseTransport | None = None,
) -> bool:
    """Smoke-test each target; True when every check passed. Every service is tried, so one
    run names everything that is broken."""
    started = time.monotonic()
    correlation = f"smoke-{uuid.uuid4().hex[:12]}"  # find the run in every service's logs
    say(f"smoke run {correlation}")
    failed: list[str] = []
    for target in targets:
        base = target.base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}", "X-Correlation-ID": correlation}
        async with (
            httpx.AsyncClient(
                base_url=base, headers=headers, timeout=REQUEST_TIMEOUT_S, transport=transport
            ) as api,
            httpx.AsyncClient(
                base_url=base, timeout=REQUEST_TIMEOUT_S, transport=transport
            ) as anonymous,
        ):
            ctx = SmokeContext(target.spec, api, anonymous, timeout_s, say)
            try:
                await common_checks(ctx)
                check = service_check(target.spec)
                if check is not None:
                    await check(ctx)
            except SmokeFailed as exc:
                say(f"FAIL  {target.spec.name:<12} {exc}")
                failed.append(target.spec.name)
    elapsed = time.monotonic() - started
    if failed:
        say(f"smoke FAILED for {', '.join(failed)} ({elapsed:.1f} s)")
        return False
    say(f"smoke passed: {len(targets)} service(s) in {elapsed:.1f} s")
    return True
