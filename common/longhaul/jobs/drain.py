"""The deployment watch: a worker whose ECS service has moved on to a new deployment drains.

A busy worker holds task scale-in protection, and under a steady backlog it would never be
idle, so a rolling deployment could never stop it. Every period the watch asks ECS whether
the deployment that started this task is still the service's PRIMARY one; once another is,
it calls its callback (the worker's `drain`) once: the worker takes no new jobs, protection
lapses when its last job ends, and ECS stops the task.

Who am I comes from the task metadata endpoint v4 (task ARN, cluster) and `DescribeTasks`
(`group` is `service:<name>`, `startedBy` the deployment id); it never changes, so it is
looked up once. Each period then costs one `DescribeServices`. A failure (metadata down,
throttled, access denied) is logged once per kind and tried again the next period; it never
stops the worker and never drains it. A no-op (with one debug line) where
`ECS_CONTAINER_METADATA_URI_V4` is not set, as on a laptop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from botocore.exceptions import BotoCoreError, ClientError

from longhaul.aws.clients import AwsClients

__all__ = ["METADATA_VARIABLE", "DeploymentWatch", "TaskIdentity"]

log = logging.getLogger(__name__)

METADATA_VARIABLE = "ECS_CONTAINER_METADATA_URI_V4"
SERVICE_GROUP = "service:"
DEPLOYMENT_PREFIX = "ecs-svc/"
JITTER = 0.1  # of the period, so a service's workers do not all ask ECS in the same second


@dataclass(frozen=True)
class TaskIdentity:
    """This task, the service that runs it and the deployment that started it."""

    task_arn: str
    cluster: str
    service: str
    deployment_id: str


class _Trouble(Exception):
    """One look failed, for a reason of `kind` (what is logged once)."""

    def __init__(self, kind: str, detail: object) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


class DeploymentWatch:
    """Calls `on_replaced` once when this task's deployment is no longer its service's PRIMARY."""

    def __init__(
        self,
        metadata_uri: str | None,
        aws: AwsClients,
        on_replaced: Callable[[], object],
        *,
        every_s: float = 60.0,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._url = f"{metadata_uri.rstrip('/')}/task" if metadata_uri else None
        self._aws = aws
        self._on_replaced = on_replaced
        self._every_s = every_s
        self._http = http or httpx.AsyncClient(timeout=5)
        self._located: tuple[str, str] | None = None  # (task ARN, cluster) from the metadata
        self.identity: TaskIdentity | None = None
        self.replaced = False
        self._done = self._url is None  # nothing (more) to watch
        self._reported: set[str] = set()
        self._runner: asyncio.Task[None] | None = None
        if self._url is None:
            log.debug("%s is not set: the deployment watch is off", METADATA_VARIABLE)

    @property
    def watching(self) -> bool:
        """Whether later looks can still find this task replaced."""
        return not self._done

    async def check(self) -> bool:
        """One look; True once this task's deployment has been replaced."""
        if self._done:
            return self.replaced
        try:
            identity = self.identity or await self._identify()
            if identity is None:
                return False
            deployments = await self._deployments(identity)
        except _Trouble as trouble:
            self._report(trouble.kind, trouble.detail)
            return False
        except Exception as exc:  # never fatal: the worker goes on as it is
            self._report(f"unexpected {type(exc).__name__}", exc)
            return False
        primary = [d.get("id") for d in deployments if d.get("status") == "PRIMARY"]
        if not primary or identity.deployment_id in primary:
            return False
        log.info(
            "deployment %s replaced this task's %s: draining",
            primary[0],
            identity.deployment_id,
            extra={"ecs_service": identity.service, "task_arn": identity.task_arn},
        )
        self.replaced = True
        self._done = True
        try:
            self._on_replaced()
        except Exception:
            log.exception("draining after the deployment was replaced failed")
        return True

    async def run(self) -> None:
        """Look now, then every period, until the deployment is replaced or there is nothing
        to watch."""
        while not self._done:
            await self.check()
            if self._done:
                return
            await asyncio.sleep(self._every_s * random.uniform(1 - JITTER, 1 + JITTER))

    def start(self) -> None:
        """Run the watch in the background (nothing where there is nothing to watch)."""
        if not self._done and self._runner is None:
            self._runner = asyncio.create_task(self.run(), name="deployment-watch")

    async def close(self) -> None:
        """Stop watching and close the HTTP client."""
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None
        await self._http.aclose()

    # -- looking ---------------------------------------------------------------------------

    async def _identify(self) -> TaskIdentity | None:
        """Who this task is, from the metadata endpoint and DescribeTasks; None (and the
        watch off) when no service deployment started it."""
        assert self._url is not None
        if self._located is None:
            try:
                response = await self._http.get(self._url)
                response.raise_for_status()
                metadata = response.json()
                self._located = (str(metadata["TaskARN"]), str(metadata["Cluster"]))
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                raise _Trouble("task metadata unavailable", repr(exc)) from None
        task_arn, cluster = self._located
        described = await self._ecs("DescribeTasks", cluster=cluster, tasks=[task_arn])
        tasks = described.get("tasks") or []
        if not tasks:
            raise _Trouble("DescribeTasks found no task", described.get("failures"))
        group = str(tasks[0].get("group") or "")
        started_by = str(tasks[0].get("startedBy") or "")
        if not group.startswith(SERVICE_GROUP) or not started_by.startswith(DEPLOYMENT_PREFIX):
            log.info(
                "this task was not started by a service deployment (group %r, startedBy %r): "
                "the deployment watch is off",
                group,
                started_by,
            )
            self._done = True
            return None
        self.identity = TaskIdentity(
            task_arn=task_arn,
            cluster=cluster,
            service=group.removeprefix(SERVICE_GROUP),
            deployment_id=started_by,
        )
        log.info(
            "watching the deployment of this task",
            extra={
                "ecs_service": self.identity.service,
                "deployment": started_by,
                "task_arn": task_arn,
            },
        )
        return self.identity

    async def _deployments(self, identity: TaskIdentity) -> list[dict[str, Any]]:
        described = await self._ecs(
            "DescribeServices", cluster=identity.cluster, services=[identity.service]
        )
        services = described.get("services") or []
        if not services:
            raise _Trouble("DescribeServices found no service", described.get("failures"))
        deployments: list[dict[str, Any]] = services[0].get("deployments") or []
        return deployments

    async def _ecs(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        """One ECS call; its failures as `_Trouble` named by operation and error code."""
        method = {"DescribeTasks": "describe_tasks", "DescribeServices": "describe_services"}
        try:
            ecs = await self._aws.get("ecs")
            answer: dict[str, Any] = await getattr(ecs, method[operation])(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            raise _Trouble(f"{operation} {code}", exc) from None
        except BotoCoreError as exc:
            raise _Trouble(f"{operation} {type(exc).__name__}", exc) from None
        return answer

    def _report(self, kind: str, detail: object) -> None:
        if kind in self._reported:
            log.debug("deployment watch: %s: %s", kind, detail)
            return
        self._reported.add(kind)
        log.warning(
            "deployment watch: %s; trying again every %.0f s: %s", kind, self._every_s, detail
        )
