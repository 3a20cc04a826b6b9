"""`python -m longhaul_training.demo`: the training flow against `make dev`.

Generates a classification table, uploads it through POST /datasets and its presigned PUT
as the local dev user, waits for its registration, trains a small LightGBM model, prints
its metric series and model card, and predicts the table with it.
Developer tooling: the service never imports it.
"""

from __future__ import annotations

import asyncio
import io
import time
from typing import Annotated, Any

import httpx
import typer

from longhaul.local import platform
from longhaul.local.errors import unreachable_in_one_line
from longhaul.local.platform import local_clients
from longhaul.local.token import dev_token
from longhaul_training.spec import SPEC

app = typer.Typer(add_completion=False, help=__doc__)


def make_csv(rows: int, seed: int) -> bytes:
    """A generated binary classification table (features f0..f7, target `label`)."""
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=rows, n_features=8, n_informative=5, random_state=seed)
    out = io.StringIO()
    out.write(",".join([*(f"f{i}" for i in range(8)), "label"]) + "\n")
    for features, label in zip(x, y, strict=True):
        out.write(",".join([*(f"{v:.6f}" for v in features), str(int(label))]) + "\n")
    return out.getvalue().encode()


async def _until(
    client: httpx.AsyncClient, path: str, done: Any, timeout_s: float, show: bool = False
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        response = await client.get(path)
        if response.status_code == 200:
            body: dict[str, Any] = response.json()
            line = (
                f"  {body.get('state')} {body.get('progress', 0):.0%} {body.get('message') or ''}"
            )
            if show and line != last:
                typer.echo(line)
                last = line
            if done(body):
                return body
        await asyncio.sleep(1)
    raise SystemExit(f"{path} did not finish within {timeout_s:.0f} s")


def _ended(job: dict[str, Any]) -> bool:
    return job.get("state") in ("succeeded", "failed", "cancelled")


async def _job(client: httpx.AsyncClient, job_type: str, payload: dict[str, Any], t: float) -> Any:
    response = await client.post("/jobs", json={"type": job_type, "payload": payload})
    response.raise_for_status()
    job = await _until(client, f"/jobs/{response.json()['id']}", _ended, t, show=True)
    if job["state"] != "succeeded":
        raise SystemExit(f"the {job_type} job ended {job['state']}: {job.get('error')}")
    return job


async def run(
    api: str, endpoint: str, env: str, region: str, data: bytes, rounds: int, timeout_s: float
) -> None:
    """Upload, register, train, show the metrics and the card, predict."""
    aws = local_clients(endpoint, region)
    try:
        token = await dev_token(aws, env)
    finally:
        await aws.close()
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=api, headers=headers, timeout=30) as client:
        ticket = await client.post("/datasets", json={"filename": "demo.csv", "size": len(data)})
        ticket.raise_for_status()
        upload = ticket.json()
        async with httpx.AsyncClient(timeout=60) as s3:
            (
                await s3.put(upload["url"], content=data, headers=upload["headers"])
            ).raise_for_status()
        typer.echo(f"uploaded demo.csv ({len(data)} bytes) as dataset {upload['dataset_id']}")
        dataset = await _until(
            client, f"/datasets/{upload['dataset_id']}", lambda d: True, timeout_s
        )
        if dataset["status"] != "registered":
            raise SystemExit(f"the dataset was rejected: {dataset['reason']}")
        info = dataset["info"]
        typer.echo(f"registered: {info['rows']} rows, {info['columns']} columns\n\ntraining:")
        job = await _job(
            client,
            "train",
            {
                "dataset": upload["dataset_id"],
                "target": "label",
                "task": "classification",
                "family": "lightgbm",
                "params": {"n_rounds": rounds, "learning_rate": 0.1},
                "validation": {"holdout": 0.2},
                "seed": 42,
            },
            timeout_s,
        )
        points = (await client.get(f"/jobs/{job['id']}/metrics")).json()["points"]
        typer.echo(f"\nmetrics ({len(points)} points), every tenth round:")
        for point in points[::10] + points[-1:]:
            valid = ", ".join(f"{k} {v:.4f}" for k, v in point["valid"].items())
            typer.echo(f"  round {point['step']:>4}: valid {valid}")
        model_id = job["result"]["model_id"]
        urls = (await client.get(f"/models/{model_id}/download")).json()["urls"]
        async with httpx.AsyncClient(timeout=60) as s3:
            card = (await s3.get(urls["card.md"])).text
        typer.echo(f"\nmodel {model_id}, its card:\n\n{card}")
        typer.echo("predicting:")
        predicted = await _job(
            client, "predict", {"model": model_id, "dataset": upload["dataset_id"]}, timeout_s
        )
        result = predicted["result"]
        typer.echo(f"\n{result['rows']} predictions in {result['key']}:\n  {result['url']}")


@app.command()
def demo(
    api: Annotated[str, typer.Option(help="The training API")] = f"http://127.0.0.1:{SPEC.port}",
    endpoint: Annotated[
        str, typer.Option(envvar="AWS_ENDPOINT_URL", help="The local AWS endpoint (moto)")
    ] = platform.DEFAULT_ENDPOINT,
    env: Annotated[str, typer.Option(envvar="LONGHAUL_ENV")] = platform.DEFAULT_ENV,
    region: Annotated[str, typer.Option(envvar="AWS_REGION")] = platform.DEFAULT_REGION,
    rows: Annotated[int, typer.Option(help="Rows of the generated table")] = 2000,
    rounds: Annotated[int, typer.Option(help="LightGBM boosting rounds")] = 100,
    seed: Annotated[int, typer.Option(help="Seed of the generated table")] = 0,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each step")] = 300,
) -> None:
    """Train a model on a generated table on the running local platform."""
    data = make_csv(rows, seed)
    with unreachable_in_one_line(endpoint):
        asyncio.run(run(api, endpoint, env, region, data, rounds, timeout))


def main() -> None:
    """Entry point of `python -m longhaul_training.demo`."""
    app()


if __name__ == "__main__":
    main()
