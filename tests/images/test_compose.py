"""docker-compose.yml runs: brought up with podman-compose from the images `make images`
builds (the project's emulator, the platform tools, media's image), it provisions the
emulator, the media roles become healthy by the file's own healthchecks, and the media
walkthrough, driven from the host, transcodes a clip: the presigned upload, the presigned
output URLs and the playback playlists all resolve and verify from the host. Then
`podman-compose down` leaves no container, volume or network of the project behind.

Debian's podman-compose (1.0.3) does not wait on `depends_on` conditions and its podman
timers need systemd, so the test starts the containers that `up --no-start` created in the
file's dependency order and waits on each condition itself: `service_healthy` by running
the container's healthcheck (`podman healthcheck run`), `service_completed_successfully`
by the container's exit status.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import m3u8
import pytest
import yaml

from longhaul.local import compose, images, platform, podman_host
from longhaul.local.token import dev_token
from longhaul_media import demo
from longhaul_media.spec import SPEC as MEDIA
from tests.images.conftest import CACHE, ROOT
from tests.support.media import decodes, make_clip

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("LONGHAUL_IMAGE_TESTS") != "1",
        reason="builds images with buildah and runs them with podman-compose, as root, for "
        "minutes: `make test-images` runs these (LONGHAUL_IMAGE_TESTS=1)",
    ),
    pytest.mark.timeout(600),
    # The file binds the dev runner's fixed ports (4566, 8110, 8111) on the host.
    pytest.mark.xdist_group("dev-runner"),
]

COMPOSE_FILE = ROOT / "docker-compose.yml"
PROJECT = "longhaul-compose-test"
SERVICES = ("moto", "provision", "media-api", "media-worker")
# Debian's podman-compose puts host-network containers on the project network too; this
# podman drops that (longhaul.local.podman_host says why; docs/compose.md has users run it).
PODMAN = Path(podman_host.__file__)
HEALTHY_WITHIN_S = 120
API = f"http://{compose.COMPOSE_HOST}:{MEDIA.port}"


class ComposeProject:
    """The compose file's project, run with podman-compose and podman as configured here."""

    def __init__(self) -> None:
        self.env = images.podman_environment(CACHE)
        self.document: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())

    def compose(self, *argv: str, timeout: float = 300) -> str:
        """Run `podman-compose argv...` on the file; a failure carries its output."""
        command = ["podman-compose", f"--podman-path={PODMAN}", "-p", PROJECT]
        done = subprocess.run(
            [*command, "-f", str(COMPOSE_FILE), *argv],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise AssertionError(f"podman-compose {argv} failed:\n{done.stdout}{done.stderr}")
        return done.stdout + done.stderr

    def podman(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """`podman argv...`, whatever its status."""
        return subprocess.run(
            ["podman", *argv], env=self.env, capture_output=True, text=True, timeout=timeout
        )

    @staticmethod
    def container(service: str) -> str:
        """The container podman-compose names for `service`."""
        return f"{PROJECT}_{service}_1"

    def containers(self) -> list[str]:
        """Every container of the project, running or not."""
        label = f"label=io.podman.compose.project={PROJECT}"
        listed = self.podman("ps", "--all", f"--filter={label}", "--format={{.Names}}")
        return listed.stdout.split()

    def logs(self, service: str) -> str:
        """The last lines `service`'s container printed."""
        done = self.podman("logs", "--tail=40", self.container(service))
        return f"--- {service}:\n{done.stdout}{done.stderr}"

    def wait_healthy(self, service: str) -> None:
        """Run `service`'s healthcheck until it passes and its server says it listens; fail
        if the container stops first."""
        name = self.container(service)
        deadline = time.monotonic() + HEALTHY_WITHIN_S
        while time.monotonic() < deadline:
            state = self.podman("inspect", "--format={{.State.Status}}", name).stdout.strip()
            if state != "running":
                raise AssertionError(f"{service} is {state}, not healthy\n{self.logs(service)}")
            if self.podman("healthcheck", "run", name).returncode == 0 and self.listening(service):
                return
            time.sleep(1)
        raise AssertionError(f"{service} not healthy in {HEALTHY_WITHIN_S}s\n{self.logs(service)}")

    def listening(self, service: str) -> bool:
        """Whether `service`'s own server says it listens on each of its ports (so that the
        healthcheck, which asks 127.0.0.1, did not get its answer from another process)."""
        done = self.podman("logs", self.container(service))
        logs = (done.stdout + done.stderr).lower()
        host = compose.COMPOSE_HOST
        return all(f"running on http://{host}:{port}" in logs for port in self.ports(service))

    def require_running(self, *services: str) -> None:
        """Fail if any of `services` has stopped (a role that could not bind its port exits,
        and then another process on that port would have answered in its place)."""
        for service in services:
            name = self.container(service)
            state = self.podman("inspect", "--format={{.State.Status}}", name).stdout.strip()
            assert state == "running", f"{service} is {state}\n{self.logs(service)}"

    def wait_completed(self, service: str) -> None:
        """Wait for `service`'s container to exit, and require status 0."""
        name = self.container(service)
        status = self.podman("wait", name, timeout=HEALTHY_WITHIN_S).stdout.strip()
        assert status == "0", f"{service} exited with {status}\n{self.logs(service)}"

    def start(self, service: str, started: set[str]) -> None:
        """Start `service` after its dependencies, each waited on as its condition says."""
        if service in started:
            return
        depends: dict[str, dict[str, str]] = self.document["services"][service].get(
            "depends_on", {}
        )
        for dependency, rule in depends.items():
            self.start(dependency, started)
            condition = rule.get("condition", "service_started")
            if condition == "service_healthy":
                self.wait_healthy(dependency)
            elif condition == "service_completed_successfully":
                self.wait_completed(dependency)
        require_free(self.ports(service))
        done = self.podman("start", self.container(service))
        assert done.returncode == 0, f"podman start {service}: {done.stderr}"
        started.add(service)

    def ports(self, service: str) -> list[int]:
        """The host ports `service` listens on (its LONGHAUL_PORT, or the emulator's)."""
        if service == "moto":
            return [platform.MOTO_PORT]
        port = self.document["services"][service].get("environment", {}).get("LONGHAUL_PORT")
        return [int(port)] if port else []

    def volumes(self) -> list[str]:
        """The volumes the project's containers mount (the anonymous /scratch ones)."""
        names = self.containers()
        if not names:
            return []
        mounts = "{{range .Mounts}}{{.Name}} {{end}}"
        return self.podman("inspect", f"--format={mounts}", *names).stdout.split()

    def down(self) -> None:
        """`podman-compose down`, then the anonymous volumes and the project network that
        podman-compose 1.0.3 leaves behind."""
        volumes = self.volumes()
        with contextlib.suppress(AssertionError):
            self.compose("down", "--timeout=30")
        for name in self.containers():  # what `down` could not remove
            self.podman("rm", "--force", "--volumes", "--time=5", name)
        for volume in volumes:
            self.podman("volume", "rm", "--force", volume)
        self.podman("network", "rm", "--force", f"{PROJECT}_default")


def require_free(ports: list[int]) -> None:
    """Fail, naming the port, if anything on this machine listens on one of `ports`."""
    for port in ports:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((compose.COMPOSE_HOST, port))
            except OSError as exc:
                pytest.fail(f"port {port} is taken ({exc}): is `make dev` or compose running?")


@pytest.fixture(scope="session")
def compose_images() -> list[str]:
    """The images the compose file names for its emulator, provisioner and media roles,
    built by `make images`'s code (buildah's layer cache keeps unchanged steps quick)."""
    return images.build(["media"], root=ROOT, cache=CACHE, quiet=True, tools=True)


@pytest.fixture
def project(compose_images: list[str]) -> Iterator[ComposeProject]:
    """The compose project, created (not started) from the committed file; brought down
    at the end whatever happened."""
    require_free([platform.MOTO_PORT, MEDIA.port, MEDIA.worker_port])
    running = ComposeProject()
    for service in SERVICES:
        assert running.document["services"][service]["image"] in compose_images, service
    try:
        running.compose("up", "--no-build", "--no-start", *SERVICES)
        yield running
    finally:
        running.down()


async def fetch(url: str, **kwargs: Any) -> httpx.Response:
    """GET `url` from the host (a presigned URL, or the API with a bearer token)."""
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(url, **kwargs)
    assert response.status_code == 200, f"{url}: {response.status_code} {response.text[:300]}"
    return response


async def test_compose_runs_the_media_walkthrough_from_the_host(
    project: ComposeProject, tmp_path: Path
) -> None:
    started: set[str] = set()
    for service in ("media-api", "media-worker"):
        project.start(service, started)
        project.wait_healthy(service)
    assert started == set(SERVICES)
    roles = ("moto", "media-api", "media-worker")

    # The walkthrough as `make demo` runs it: a dev token from the emulator's Cognito, the
    # upload ticket, the presigned PUT (from here), the transcode, the outputs' URLs.
    clip = make_clip(tmp_path / "compose.mp4", size="640x360", seconds=4, gop_s=1)
    endpoint = compose.COMPOSE_ENDPOINT
    region = platform.DEFAULT_REGION
    try:
        result = await demo.run(
            API, endpoint, platform.DEFAULT_ENV, region, clip.read_bytes(), "fast", 240
        )
    except SystemExit as exc:
        pytest.fail(f"{exc}\n{project.logs('media-api')}\n{project.logs('media-worker')}")

    # The walkthrough ran on these containers (they still run, so nothing else holds their
    # ports), and the presigned output URLs are the emulator's host address.
    project.require_running(*roles)
    master_url = result["urls"][result["master"]]
    assert master_url.startswith(f"{endpoint}/"), master_url
    master = m3u8.loads((await fetch(master_url)).text)
    assert master.is_variant
    assert master.playlists

    # Playback: the API's playlists, with every segment a presigned URL fetched from here.
    aws = platform.local_clients(endpoint, region)
    try:
        token = await dev_token(aws, platform.DEFAULT_ENV)
    finally:
        await aws.close()
    headers = {"Authorization": f"Bearer {token}"}
    hls = f"{API}/jobs/{result['job_id']}/hls"
    played = m3u8.loads((await fetch(f"{hls}/master.m3u8", headers=headers)).text)
    assert [p.uri for p in played.playlists] == [p.uri for p in master.playlists]
    rendition = m3u8.loads((await fetch(f"{hls}/{played.playlists[0].uri}", headers=headers)).text)
    assert rendition.is_endlist
    assert rendition.segments
    for number, segment in enumerate(rendition.segments):
        assert segment.uri.startswith(f"{endpoint}/"), segment.uri
        path = tmp_path / f"segment-{number}"
        path.write_bytes((await fetch(segment.uri)).content)
        assert await asyncio.to_thread(decodes, path), f"segment {number} does not decode"
    project.require_running(*roles)
