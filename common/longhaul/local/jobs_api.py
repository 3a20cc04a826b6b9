"""What `longhaul jobs` talks to: every service's job routes (local or behind the ALB),
their Server-Sent Events, the local dev token, and the job's log lines (the dev runner's
files, or CloudWatch Logs)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from longhaul.local import platform
from longhaul.spec import ServiceSpec

__all__ = [
    "OUTCOME",
    "Api",
    "ApiError",
    "Unreachable",
    "cloudwatch_lines",
    "job_log_lines",
    "local_dev_token",
    "stack_log_group",
]

OUTCOME = {"succeeded": 0, "failed": 1, "cancelled": 2}


class Unreachable(Exception):
    """The platform, or one service of it, does not answer."""


class ApiError(Exception):
    """The API answered with an error (its problem+json)."""

    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        title = body.get("title") if isinstance(body, dict) else None
        detail = body.get("detail") if isinstance(body, dict) else None
        super().__init__(f"{status} {title or 'error'}" + (f": {detail}" if detail else ""))


@dataclass
class Api:
    """The job routes of every service, local or on AWS."""

    services: dict[str, str]  # name -> base URL
    token: str
    timeout_s: float = 10.0

    @classmethod
    def of(
        cls,
        specs: list[ServiceSpec],
        *,
        api: str | None,
        token: str | None,
        endpoint: str = platform.DEFAULT_ENDPOINT,
        env: str = platform.DEFAULT_ENV,
    ) -> Api:
        """Local service URLs and the dev token, or `api`/<service> with `token`."""
        with_jobs = [s for s in specs if s.queue is not None and s.table is not None]
        if api:
            if not token:
                raise Unreachable("--api needs --token (or LONGHAUL_TOKEN)")
            base = api.rstrip("/")
            return cls({s.name: f"{base}/{s.name}" for s in with_jobs}, token)
        local = {s.name: f"http://127.0.0.1:{s.port}" for s in with_jobs}
        return cls(local, token or local_dev_token(endpoint, env))

    def _client(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        return httpx.Client(headers=headers, timeout=self.timeout_s)

    def request(self, service: str, method: str, path: str, **kwargs: Any) -> Any:
        """One call to `service`; its JSON body. Raises Unreachable or ApiError."""
        url = self.services[service] + path
        try:
            with self._client() as http:
                response = http.request(method, url, **kwargs)
        except httpx.TransportError:
            raise Unreachable(f"{service} does not answer at {self.services[service]}") from None
        body = _json(response)
        if response.status_code >= 400:
            raise ApiError(response.status_code, body)
        return body

    def find(self, job_id: str, only: list[str] | None = None) -> tuple[str, dict[str, Any]]:
        """The service that holds `job_id`, and the job (404 from every one: ApiError)."""
        down: list[str] = []
        for service in only or list(self.services):
            try:
                return service, self.request(service, "GET", f"/jobs/{job_id}")
            except ApiError as exc:
                if exc.status != 404:
                    raise
            except Unreachable:
                down.append(service)
        if down and len(down) == len(only or self.services):
            raise Unreachable(f"no service answers ({', '.join(down)}): is the platform up?")
        raise ApiError(404, {"title": "Not Found", "detail": f"no job {job_id} of yours"})

    def jobs(self, service: str, *, state: str | None, limit: int) -> Iterator[dict[str, Any]]:
        """`service`'s jobs of the caller, newest first, page after page."""
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": min(limit, 100)}
            if state:
                params["state"] = state
            if cursor:
                params["cursor"] = cursor
            page = self.request(service, "GET", "/jobs", params=params)
            yield from page["jobs"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def events(self, service: str, job_id: str) -> Iterator[dict[str, Any]]:
        """The job's Server-Sent Events (progress and state) until it ends; reconnects with
        Last-Event-ID when the stream's lifetime is up."""
        last: str | None = None
        url = f"{self.services[service]}/jobs/{job_id}/events"
        while True:
            headers = {"Accept": "text/event-stream", **({"Last-Event-ID": last} if last else {})}
            ended = False
            try:
                with (
                    self._client() as http,
                    http.stream(
                        "GET", url, headers=headers, timeout=httpx.Timeout(10, read=60)
                    ) as response,
                ):
                    if response.status_code >= 400:
                        response.read()
                        raise ApiError(response.status_code, _json(response))
                    for event in _sse(response.iter_lines()):
                        last = event.get("id") or last
                        data = json.loads(event.get("data") or "{}")
                        yield data
                        if data.get("kind") == "state" and data.get("state") in OUTCOME:
                            ended = True
                            return
            except httpx.TransportError:
                raise Unreachable(
                    f"{service} does not answer at {self.services[service]}"
                ) from None
            if not ended:
                job = self.request(service, "GET", f"/jobs/{job_id}")
                if job["state"] in OUTCOME:
                    yield {
                        "kind": "state",
                        "state": job["state"],
                        "progress": job["progress"],
                        "message": job.get("message"),
                    }
                    return


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {"title": response.reason_phrase, "detail": response.text[:200]}


def _sse(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    """Server-Sent Events from a stream's lines: each a dict of its fields."""
    event: dict[str, str] = {}
    for line in lines:
        if not line:
            if event:
                yield event
            event = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        event[name] = event[name] + "\n" + value if name == "data" and name in event else value
    if event:
        yield event


def local_dev_token(endpoint: str, env: str) -> str:
    """The local dev user's token, or Unreachable when the local platform is not up."""
    from longhaul.local.token import dev_token

    try:
        httpx.get(f"{endpoint}/moto-api/", timeout=2)
    except httpx.TransportError:
        raise Unreachable(
            f"the local platform is not running (nothing answers at {endpoint}): "
            "start it with `make dev`, or pass --api and --token for AWS"
        ) from None

    async def fetch() -> str:
        aws = platform.local_clients(endpoint, platform.DEFAULT_REGION)
        try:
            return await dev_token(aws, env)
        finally:
            await aws.close()

    try:
        return asyncio.run(fetch())
    except SystemExit as exc:
        raise Unreachable(str(exc.code)) from None


def job_log_lines(log_dir: Path, service: str, job_id: str) -> Iterator[dict[str, Any]]:
    """The JSON log lines of `service`'s roles that name `job_id`, oldest first."""
    found: list[dict[str, Any]] = []
    for role in ("api", "worker"):
        path = log_dir / f"{service}-{role}.log"
        if not path.is_file():
            continue
        for text in path.read_text(errors="replace").splitlines():
            if job_id not in text:
                continue
            try:
                line = json.loads(text)
            except ValueError:
                line = {"message": text}
            if not isinstance(line, dict):
                continue
            if line.get("job_id") not in (None, job_id):
                continue
            found.append({**line, "role": role})
    found.sort(key=lambda line: str(line.get("time", "")))
    yield from found


def stack_log_group(stack: str) -> str:
    """The log group the service's stack created (its tasks' awslogs group)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        found = boto3.client("cloudformation").describe_stack_resources(StackName=stack)
    except (BotoCoreError, ClientError) as exc:
        raise Unreachable(f"cannot read stack {stack}: {exc} (or pass --log-group)") from None
    groups = [
        r["PhysicalResourceId"]
        for r in found["StackResources"]
        if r["ResourceType"] == "AWS::Logs::LogGroup" and r["LogicalResourceId"].startswith("Logs")
    ]
    if len(groups) != 1:
        raise Unreachable(f"stack {stack} has no single service log group; pass --log-group")
    return str(groups[0])


def cloudwatch_lines(group: str, job_id: str) -> Iterator[dict[str, Any]]:
    """CloudWatch Logs lines of `group` that carry `job_id` (the last day)."""
    import boto3

    logs_client = boto3.client("logs")
    start = int((time.time() - 86_400) * 1000)
    kwargs: dict[str, Any] = {
        "logGroupName": group,
        "filterPattern": f'"{job_id}"',
        "startTime": start,
    }
    while True:
        page = logs_client.filter_log_events(**kwargs)
        for event in page.get("events", []):
            try:
                line = json.loads(event["message"])
            except ValueError:
                line = {"message": event["message"]}
            yield {**line, "role": event.get("logStreamName", "").split("/")[0]}
        if not page.get("nextToken"):
            return
        kwargs["nextToken"] = page["nextToken"]
