"""Dispatch latency: POST /jobs to the handler's first line, with an idle worker waiting,
beside the bare queue (SQS send to a long-polling receive) on the same moto server."""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path

import httpx

from bench._platform import Platform, echo_argv, free_port, percentile, serve
from longhaul.aws.clients import AwsClients
from tests.support.app import forge

SAMPLES = 40


async def _bare_queue(platform: Platform, aws: AwsClients) -> list[float]:
    """What the queue alone costs: send, and a receive already waiting on the other side."""
    sqs = await aws.get("sqs")
    url = (await sqs.create_queue(QueueName=f"bench-{platform.env}"))["QueueUrl"]
    latencies = []
    for _ in range(SAMPLES):
        receive = asyncio.create_task(sqs.receive_message(QueueUrl=url, WaitTimeSeconds=20))
        await asyncio.sleep(0.05)  # the receive is waiting, as an idle worker's is
        sent = time.time()
        await sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"t": sent}))
        message = (await receive)["Messages"][0]
        latencies.append(time.time() - sent)
        await sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return latencies


async def run() -> dict[str, float]:
    platform = Platform()
    effects = Path(tempfile.mkdtemp(prefix="longhaul-bench-"))
    api_port, worker_port = free_port(), free_port()
    processes = []
    try:
        aws = await platform.provision()
        processes.append(serve(echo_argv("api", api_port), platform.environment("api"), api_port))
        worker_env = platform.environment(
            "worker", ECHO_EFFECTS_DIR=str(effects), LONGHAUL_JOB_CONCURRENCY="1"
        )
        processes.append(serve(echo_argv("worker", worker_port), worker_env, worker_port))
        assert platform.auth is not None
        headers = {"Authorization": f"Bearer {forge(platform.auth, sub='bench')}"}
        latencies = []
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{api_port}", headers=headers, timeout=30
        ) as http:
            await asyncio.sleep(2)  # the worker's first long poll is waiting
            for _ in range(SAMPLES):
                posted = time.time()
                response = await http.post(
                    "/jobs", json={"type": "work", "payload": {"steps": 1, "step_s": 0}}
                )
                response.raise_for_status()
                record = effects / f"{response.json()['id']}.jsonl"
                while not record.exists():
                    await asyncio.sleep(0.002)
                start = json.loads(record.read_text().splitlines()[0])["t"]
                latencies.append(start - posted)
                await asyncio.sleep(0.3)  # let it finish; the worker is idle again
        bare = await _bare_queue(platform, aws)
        await aws.close()
    finally:
        for process in processes:
            process.terminate()
            process.wait()
        platform.close()
    figures = {
        "dispatch_p50_ms": percentile(latencies, 0.5) * 1000,
        "dispatch_p95_ms": percentile(latencies, 0.95) * 1000,
        "bare_queue_p50_ms": percentile(bare, 0.5) * 1000,
        "bare_queue_p95_ms": percentile(bare, 0.95) * 1000,
    }
    figures["p50_ratio"] = figures["dispatch_p50_ms"] / figures["bare_queue_p50_ms"]
    return figures


def main() -> dict[str, float]:
    figures = asyncio.run(run())
    print(
        f"dispatch (POST /jobs -> handler start, idle worker, {SAMPLES} jobs): "
        f"p50 {figures['dispatch_p50_ms']:.1f} ms, p95 {figures['dispatch_p95_ms']:.1f} ms; "
        f"bare SQS send -> waiting receive: p50 {figures['bare_queue_p50_ms']:.1f} ms, "
        f"p95 {figures['bare_queue_p95_ms']:.1f} ms; ratio p50 {figures['p50_ratio']:.1f}x"
    )
    return figures


if __name__ == "__main__":
    main()
