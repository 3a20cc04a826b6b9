"""The deployment watch: a worker task whose service moved on to a new deployment drains,
once; a task of the PRIMARY deployment never does; and no failure (metadata endpoint down,
ECS throttling or denying) drains it or stops the watch.

The task metadata endpoint v4 is a local HTTP server. ECS is moto where moto models enough
(a service's deployment, a task started by it, a forced new deployment), and otherwise the
same local server speaking ECS's JSON protocol to the real aioboto3 client: moto keeps one
deployment per service, so it can not show ECS's mid-rollout answer (the new deployment
PRIMARY beside the old one ACTIVE), nor throttle or deny.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from longhaul.aws.clients import AwsClients, client_config
from longhaul.jobs.drain import DeploymentWatch, TaskIdentity
from tests.conftest import REGION, Platform
from tests.support.app import running_app
from tests.support.moto import free_port

TARGET = "AmazonEC2ContainerServiceV20141113."
ACCOUNT = "123456789012"
CLUSTER = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/longhaul-test"
TASK = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/longhaul-test/0123456789abcdef"
OLD, NEW = "ecs-svc/1111111111111111111", "ecs-svc/2222222222222222222"


class EcsDouble:
    """A local HTTP server playing this task's metadata endpoint (`GET <uri>/task`) and
    ECS's DescribeTasks and DescribeServices (JSON protocol), each scriptable to fail."""

    def __init__(self, *, task_arn: str = TASK, cluster: str = CLUSTER) -> None:
        self.metadata = {"TaskARN": task_arn, "Cluster": cluster, "Family": "echo-worker"}
        self.metadata_status = 200
        self.task: dict[str, Any] = {
            "taskArn": task_arn,
            "clusterArn": cluster,
            "group": "service:echo-worker",
            "startedBy": OLD,
        }
        self.deployments: list[dict[str, Any]] = [{"id": OLD, "status": "PRIMARY"}]
        self.errors: dict[str, tuple[int, str]] = {}  # ECS operation -> (status, error code)
        self.calls: list[tuple[str, dict[str, Any]]] = []  # (operation or "metadata", body)
        double = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                double.calls.append(("metadata", {"path": self.path}))
                if self.path != "/v4/container-1/task":
                    self._send(404, {})
                else:
                    self._send(double.metadata_status, double.metadata)

            def do_POST(self) -> None:
                operation = self.headers.get("X-Amz-Target", "").removeprefix(TARGET)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                double.calls.append((operation, body))
                if operation in double.errors:
                    status, code = double.errors[operation]
                    self._send(status, {"__type": code, "message": f"{code} (played)"})
                elif operation == "DescribeTasks":
                    found = double.task["taskArn"] in body["tasks"]
                    self._send(200, {"tasks": [double.task] if found else [], "failures": []})
                elif operation == "DescribeServices":
                    service = {"serviceName": "echo-worker", "deployments": double.deployments}
                    self._send(200, {"services": [service], "failures": []})
                else:
                    self._send(400, {"__type": "UnknownOperationException"})

            def _send(self, status: int, document: dict[str, Any]) -> None:
                data = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.metadata_uri = f"{self.endpoint}/v4/container-1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self, operation: str) -> int:
        """How many requests of `operation` ("metadata" for the endpoint) arrived."""
        return sum(1 for name, _ in self.calls if name == operation)

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def double() -> Iterator[EcsDouble]:
    """The metadata endpoint and ECS, played locally."""
    server = EcsDouble()
    yield server
    server.close()


@pytest.fixture
async def double_aws(double: EcsDouble) -> AsyncIterator[AwsClients]:
    """Real aioboto3 clients pointed at the double, one attempt a call (no retry waits)."""
    clients = AwsClients(REGION, config=client_config(max_attempts=1), endpoint_url=double.endpoint)
    yield clients
    await clients.close()


class Drains:
    """The callback the worker's `drain` stands for, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


async def _until(predicate: Callable[[], object], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "longhaul.jobs.drain" and r.levelno == logging.WARNING
    ]


# -- against moto's ECS ---------------------------------------------------------------------


async def _moto_service_task(aws: AwsClients) -> tuple[str, dict[str, Any]]:
    """On moto: a cluster, a worker service, and a task its deployment started (moto runs no
    service tasks itself, so the task is run as ECS would: group and startedBy set)."""
    ecs = await aws.get("ecs")
    cluster = f"longhaul-t{uuid.uuid4().hex[:8]}"
    await ecs.create_cluster(clusterName=cluster)
    await ecs.register_task_definition(
        family=f"{cluster}-worker",
        containerDefinitions=[{"name": "worker", "image": "longhaul-echo", "memory": 512}],
    )
    service = await ecs.create_service(
        cluster=cluster,
        serviceName="echo-worker",
        taskDefinition=f"{cluster}-worker",
        desiredCount=1,
    )
    [deployment] = service["service"]["deployments"]
    assert deployment["status"] == "PRIMARY"
    [task] = (
        await ecs.run_task(
            cluster=cluster,
            taskDefinition=f"{cluster}-worker",
            launchType="FARGATE",
            startedBy=deployment["id"],
            group="service:echo-worker",
        )
    )["tasks"]
    return cluster, task


async def test_a_task_of_the_primary_deployment_never_drains_and_drains_once_when_replaced(
    aws: AwsClients,
) -> None:
    cluster, task = await _moto_service_task(aws)
    metadata = EcsDouble(task_arn=task["taskArn"], cluster=task["clusterArn"])
    drains = Drains()
    watch = DeploymentWatch(metadata.metadata_uri, aws, drains, every_s=0.05)
    try:
        for _ in range(3):
            assert not await watch.check()
        assert drains.calls == 0, "a task of the PRIMARY deployment keeps taking jobs"
        assert watch.identity == TaskIdentity(
            task_arn=task["taskArn"],
            cluster=task["clusterArn"],
            service="echo-worker",
            deployment_id=task["startedBy"],
        )
        ecs = await aws.get("ecs")
        await ecs.update_service(cluster=cluster, service="echo-worker", forceNewDeployment=True)
        watch.start()
        await _until(lambda: drains.calls, "the drain")
        await asyncio.sleep(0.3)  # several more periods
        assert drains.calls == 1
        assert watch.replaced
        assert not watch.watching
        assert metadata.count("metadata") == 1, "who the task is is looked up once"
    finally:
        await watch.close()
        metadata.close()


async def test_the_worker_role_drains_its_job_worker_when_a_new_deployment_replaces_its_task(
    aws: AwsClients, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster, task = await _moto_service_task(aws)
    metadata = EcsDouble(task_arn=task["taskArn"], cluster=task["clusterArn"])
    try:
        async with running_app(
            monkeypatch,
            platform,
            "worker",
            ECS_CONTAINER_METADATA_URI_V4=metadata.metadata_uri,
            LONGHAUL_DEPLOYMENT_WATCH_S="0.1",
        ) as (app, _):
            await _until(lambda: metadata.count("metadata"), "the watch's first look")
            await asyncio.sleep(0.3)
            assert not app.state.job_worker.draining
            ecs = await aws.get("ecs")
            await ecs.update_service(
                cluster=cluster, service="echo-worker", forceNewDeployment=True
            )
            await _until(lambda: app.state.job_worker.draining, "the worker draining")
            assert app.state.deployment_watch.replaced
    finally:
        metadata.close()


# -- against the double: ECS's mid-rollout answer, and failures -----------------------------


async def test_a_task_of_an_active_deployment_drains_once_while_another_is_primary(
    double: EcsDouble, double_aws: AwsClients
) -> None:
    double.deployments = [
        {"id": NEW, "status": "PRIMARY", "rolloutState": "IN_PROGRESS"},
        {"id": OLD, "status": "ACTIVE", "rolloutState": "COMPLETED"},
    ]
    drains = Drains()
    watch = DeploymentWatch(double.metadata_uri, double_aws, drains, every_s=0.02)
    try:
        watch.start()
        await _until(lambda: drains.calls, "the drain")
        await asyncio.sleep(0.2)
        assert drains.calls == 1
        assert [name for name, _ in double.calls] == [
            "metadata",
            "DescribeTasks",
            "DescribeServices",
        ], "one look, then the watch stops"
        assert double.calls[1][1] == {"cluster": CLUSTER, "tasks": [TASK]}
        assert double.calls[2][1] == {"cluster": CLUSTER, "services": ["echo-worker"]}
    finally:
        await watch.close()


async def test_a_new_task_of_the_primary_deployment_does_not_drain_beside_an_active_one(
    double: EcsDouble, double_aws: AwsClients
) -> None:
    double.task["startedBy"] = NEW
    double.deployments = [{"id": NEW, "status": "PRIMARY"}, {"id": OLD, "status": "ACTIVE"}]
    drains = Drains()
    watch = DeploymentWatch(double.metadata_uri, double_aws, drains, every_s=0.02)
    try:
        for _ in range(3):
            assert not await watch.check()
        assert drains.calls == 0
        assert watch.watching
        assert double.count("DescribeTasks") == 1
        assert double.count("DescribeServices") == 3
    finally:
        await watch.close()


async def test_failures_never_drain_nor_stop_the_watch_and_each_kind_is_logged_once(
    double: EcsDouble, double_aws: AwsClients, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="longhaul.jobs.drain")
    double.deployments = [{"id": NEW, "status": "PRIMARY"}, {"id": OLD, "status": "ACTIVE"}]
    drains = Drains()
    watch = DeploymentWatch(double.metadata_uri, double_aws, drains, every_s=0.02)
    try:
        double.metadata_status = 500
        for _ in range(2):
            assert not await watch.check()
        double.metadata_status = 200
        double.errors["DescribeTasks"] = (400, "AccessDeniedException")
        for _ in range(2):
            assert not await watch.check()
        del double.errors["DescribeTasks"]
        double.errors["DescribeServices"] = (400, "ThrottlingException")
        for _ in range(2):
            assert not await watch.check()
        double.errors["DescribeServices"] = (400, "AccessDeniedException")
        for _ in range(2):
            assert not await watch.check()
        del double.errors["DescribeServices"]
        double.deployments = []  # no PRIMARY (a deployment controller other than ECS)
        assert not await watch.check()
        assert drains.calls == 0, "no failure drains the worker"
        assert double.count("metadata") == 3, "tried again until it answered, then cached"
        assert double.count("DescribeTasks") == 3
        warnings = _warnings(caplog)
        assert [w.split(";")[0] for w in warnings] == [
            "deployment watch: task metadata unavailable",
            "deployment watch: DescribeTasks AccessDeniedException",
            "deployment watch: DescribeServices ThrottlingException",
            "deployment watch: DescribeServices AccessDeniedException",
        ]

        # The loop lives through failures too, and drains once they clear.
        double.errors["DescribeServices"] = (400, "ThrottlingException")
        double.deployments = [{"id": NEW, "status": "PRIMARY"}, {"id": OLD, "status": "ACTIVE"}]
        watch.start()
        await asyncio.sleep(0.3)
        assert watch.watching
        assert drains.calls == 0
        del double.errors["DescribeServices"]
        await _until(lambda: drains.calls, "the drain after the failures")
        assert drains.calls == 1
        assert len(_warnings(caplog)) == 4, "a kind already logged is not logged again"
    finally:
        await watch.close()


async def test_an_unreachable_metadata_endpoint_or_ecs_never_drains(
    double: EcsDouble, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="longhaul.jobs.drain")
    nowhere = f"http://127.0.0.1:{free_port()}"
    drains = Drains()
    unreachable_ecs = AwsClients(
        REGION,
        config=client_config(connect_timeout=1, read_timeout=1, max_attempts=1),
        endpoint_url=nowhere,
    )
    watches = [
        DeploymentWatch(f"{nowhere}/v4/container-1", unreachable_ecs, drains),
        DeploymentWatch(double.metadata_uri, unreachable_ecs, drains),
    ]
    try:
        for watch in watches:
            for _ in range(2):
                assert not await watch.check()
            assert watch.watching
        assert drains.calls == 0
        assert [w.split(";")[0] for w in _warnings(caplog)] == [
            "deployment watch: task metadata unavailable",
            "deployment watch: DescribeTasks EndpointConnectionError",
        ]
    finally:
        for watch in watches:
            await watch.close()
        await unreachable_ecs.close()


async def test_a_task_no_service_deployment_started_stops_watching_without_draining(
    double: EcsDouble, double_aws: AwsClients
) -> None:
    double.task.update(group="family:echo-worker", startedBy="")  # a one-off RunTask
    double.deployments = [{"id": NEW, "status": "PRIMARY"}]
    drains = Drains()
    watch = DeploymentWatch(double.metadata_uri, double_aws, drains, every_s=0.02)
    try:
        watch.start()
        await _until(lambda: not watch.watching, "the watch to stop")
        assert drains.calls == 0
        assert double.count("DescribeServices") == 0
    finally:
        await watch.close()


async def test_without_the_metadata_variable_the_watch_does_nothing(
    double_aws: AwsClients, double: EcsDouble, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="longhaul.jobs.drain")
    drains = Drains()
    watch = DeploymentWatch(None, double_aws, drains, every_s=0.02)
    watch.start()
    assert not await watch.check()
    await asyncio.sleep(0.1)
    await watch.close()
    assert not watch.watching
    assert drains.calls == 0
    assert double.calls == []
    assert [r.getMessage() for r in caplog.records if r.name == "longhaul.jobs.drain"] == [
        "ECS_CONTAINER_METADATA_URI_V4 is not set: the deployment watch is off"
    ]
