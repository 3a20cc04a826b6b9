"""`python -m longhaul_analytics.demo` (`make demo-analytics`): live windows on `make dev`.

Declares a metric (orders by country: amount summed and ranked, distinct users), sends a
few hundred generated orders through POST /events as the local dev user, some of them
twice, while printing the stream of window updates (live, then final once the source is
idle), and finally the closed one-minute windows. Developer tooling: the service never
imports it.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import httpx
import typer

from longhaul.local import platform
from longhaul.local.errors import unreachable_in_one_line
from longhaul.local.platform import local_clients
from longhaul.local.token import dev_token
from longhaul_analytics.spec import SPEC

app = typer.Typer(add_completion=False, help=__doc__)

METRIC = {"event": "order", "dimensions": ["country"], "value": "amount", "distinct": "user"}


def orders(count: int, rng: random.Random) -> list[dict[str, Any]]:
    """Orders spread over the last three minutes."""
    now = datetime.now(UTC)
    return [
        {
            "id": uuid.uuid4().hex,
            "name": "order",
            "time": (now - timedelta(seconds=rng.uniform(5, 180))).isoformat(),
            "properties": {
                "country": rng.choice(["fr", "de", "it"]),
                "amount": rng.randint(1, 200),
                "user": f"user-{rng.randint(1, 40)}",
            },
        }
        for _ in range(count)
    ]


async def watch(client: httpx.AsyncClient, seconds: float) -> None:
    """Print the stream's window updates for `seconds`."""
    params = {"metric": "orders", "window": "1m"}
    try:
        async with asyncio.timeout(seconds):
            async with client.stream("GET", "/aggregates/stream", params=params) as stream:
                async for line in stream.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    update = json.loads(line.removeprefix("data: "))
                    state = f"final r{update['revision']}" if update["final"] else "live"
                    typer.echo(
                        f"  {update['start'][11:16]} {update['group']['country']}: "
                        f"count {update['count']:>4} sum {update['sum'] or 0:>8.0f} "
                        f"p95 {update['p95'] or 0:>5.0f} ({state})"
                    )
    except TimeoutError:
        return


async def run(api: str, endpoint: str, env: str, region: str, count: int, watch_s: float) -> None:
    """Send the orders while watching the stream, then print the closed windows."""
    aws = local_clients(endpoint, region)
    try:
        token = await dev_token(aws, env)
    finally:
        await aws.close()
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=api, headers=headers, timeout=60) as client:
        (await client.put("/metrics/orders", json=METRIC)).raise_for_status()
        rng = random.Random()
        events = orders(count, rng)
        watching = asyncio.create_task(watch(client, watch_s))
        await asyncio.sleep(0.5)
        for i in range(0, len(events), 100):
            batch = events[i : i + 100]
            batch += rng.sample(batch, len(batch) // 5)  # resent: counted once
            report = (await client.post("/events", json={"events": batch})).json()
            typer.echo(
                f"sent {len(batch)}: {len(report['accepted'])} accepted, "
                f"{len(report['duplicates'])} duplicates"
            )
        await watching
        start = datetime.now(UTC) - timedelta(minutes=5)
        found = await client.get(
            "/aggregates",
            params={
                "metric": "orders",
                "window": "1m",
                "start": start.isoformat(),
                "end": datetime.now(UTC).isoformat(),
            },
        )
        found.raise_for_status()
        typer.echo("\nwindows of the last five minutes:")
        for row in found.json()["windows"]:
            typer.echo(
                f"  {row['start'][11:16]} {row['group']['country']}: count {row['count']}, "
                f"sum {row['sum']}, min {row['min']}, max {row['max']}, "
                f"users {row['distinct']}, p50/p95/p99 {row['p50']}/{row['p95']}/{row['p99']}"
                f"{'' if row['final'] else ' (open)'}"
            )


@app.command()
def demo(
    api: Annotated[str, typer.Option(help="The analytics API")] = f"http://127.0.0.1:{SPEC.port}",
    endpoint: Annotated[
        str, typer.Option(envvar="AWS_ENDPOINT_URL", help="The local AWS endpoint (moto)")
    ] = platform.DEFAULT_ENDPOINT,
    env: Annotated[str, typer.Option(envvar="LONGHAUL_ENV")] = platform.DEFAULT_ENV,
    region: Annotated[str, typer.Option(envvar="AWS_REGION")] = platform.DEFAULT_REGION,
    count: Annotated[int, typer.Option(help="Orders to send")] = 300,
    watch_s: Annotated[float, typer.Option(help="Seconds to watch the stream")] = 20,
) -> None:
    """Send orders to the running local platform and print its windows as they change."""
    with unreachable_in_one_line(endpoint):
        asyncio.run(run(api, endpoint, env, region, count, watch_s))


def main() -> None:
    """Entry point of `python -m longhaul_analytics.demo`."""
    app()


if __name__ == "__main__":
    main()
