"""GET /jobs/{id} requests per second, the server pinned to one core, beside bare FastAPI
baselines served the same way and loaded by the same client in the same run."""

from __future__ import annotations

import asyncio
import sys
import time

import httpx

from bench._platform import Platform, echo_argv, free_port, serve
from tests.support.app import forge
from tests.support.workers import Jobs

DURATION_S = 5.0
CONCURRENCY = 16


async def _load(url: str, headers: dict[str, str]) -> float:
    """Requests per second a pool of `CONCURRENCY` clients gets from `url` in `DURATION_S`."""
    done = 0
    deadline = time.monotonic() + DURATION_S
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=30) as http:
        await http.get(url)  # warm up: connection, JWKS fetch

        async def client() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                response = await http.get(url)
                response.raise_for_status()
                done += 1

        started = time.monotonic()
        await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
        return done / (time.monotonic() - started)


async def run() -> dict[str, float]:
    platform = Platform()
    processes = []
    try:
        aws = await platform.provision()
        job_id = await Jobs(aws, platform.env).submit({"steps": 1}, owner="bench", enqueue_it=False)
        await aws.close()
        assert platform.auth is not None
        headers = {"Authorization": f"Bearer {forge(platform.auth, sub='bench')}"}
        kit_port, bare_port = free_port(), free_port()
        processes.append(
            serve(echo_argv("api", kit_port), platform.environment("api"), kit_port, cpu=0)
        )
        bare = [sys.executable, "-m", "uvicorn", "bench.bare:app", "--port", str(bare_port)]
        bare += [
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        processes.append(serve(bare, platform.environment("api"), bare_port, cpu=0))
        figures = {
            "bare_ping_rps": await _load(f"http://127.0.0.1:{bare_port}/ping", {}),
            "bare_getitem_rps": await _load(f"http://127.0.0.1:{bare_port}/jobs/{job_id}", {}),
            "longhaul_get_job_rps": await _load(
                f"http://127.0.0.1:{kit_port}/jobs/{job_id}", headers
            ),
        }
    finally:
        for process in processes:
            process.terminate()
            process.wait()
        platform.close()
    figures["ratio_vs_bare_getitem"] = figures["longhaul_get_job_rps"] / figures["bare_getitem_rps"]
    figures["ratio_vs_bare_ping"] = figures["longhaul_get_job_rps"] / figures["bare_ping_rps"]
    return figures


def main() -> dict[str, float]:
    figures = asyncio.run(run())
    print(
        f"GET /jobs/{{id}} on one core ({CONCURRENCY} clients, {DURATION_S:.0f} s each): "
        f"Longhaul {figures['longhaul_get_job_rps']:.0f} req/s; "
        f"bare FastAPI + GetItem {figures['bare_getitem_rps']:.0f} req/s "
        f"(ratio {figures['ratio_vs_bare_getitem']:.2f}); "
        f"bare FastAPI /ping {figures['bare_ping_rps']:.0f} req/s "
        f"(ratio {figures['ratio_vs_bare_ping']:.2f})"
    )
    return figures


if __name__ == "__main__":
    main()
