"""Fixtures of the image tests: the images, built once per session from the project's
Dockerfiles, and podman as the tests run it, removing what a test started whatever happened."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from longhaul.local import images

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / images.CACHE
# How the ECS task runs a service's container: read-only root (and no writable /tmp either),
# every Linux capability dropped, an init process, the scratch volume at /scratch and the
# variables that point temp files there.
TASK_FLAGS = ["--read-only", "--read-only-tmpfs=false", "--cap-drop=ALL", "--init"]
SCRATCH = {"MEDIA_SCRATCH_DIR": "/scratch", "TMPDIR": "/scratch"}


class Podman:
    """podman with this machine's configuration; remembers the containers and volumes it made."""

    def __init__(self) -> None:
        self.env = images.podman_environment(CACHE)
        self.containers: list[str] = []
        self.volumes: list[str] = []

    def __call__(self, *argv: str, timeout: float = 120) -> str:
        """Run `podman argv...` and return its stdout; a failure carries its output."""
        done = subprocess.run(
            ["podman", *argv], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            raise AssertionError(f"podman {argv[0]} failed ({done.returncode}):\n{done.stderr}")
        return done.stdout

    def task_flags(self, environment: Mapping[str, str]) -> list[str]:
        """`podman run` flags for a container run as the task runs it, on the host's network
        (where the emulator listens on 127.0.0.1), with a fresh scratch volume."""
        volume = f"longhaul-test-scratch-{uuid.uuid4().hex[:8]}"
        self.volumes.append(volume)
        flags = ["--network=host", *TASK_FLAGS, f"--volume={volume}:/scratch"]
        return flags + [f"--env={k}={v}" for k, v in {**environment, **SCRATCH}.items()]

    def start(self, image: str, environment: Mapping[str, str], *command: str) -> str:
        """Start `image` detached, as the task would; return the container's name."""
        name = f"longhaul-test-{uuid.uuid4().hex[:8]}"
        self.containers.append(name)
        self("run", "--detach", f"--name={name}", *self.task_flags(environment), image, *command)
        return name

    def logs(self, name: str, lines: int = 40) -> str:
        """The last `lines` lines the container printed."""
        done = subprocess.run(
            ["podman", "logs", f"--tail={lines}", name],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return done.stdout + done.stderr

    def remove_all(self) -> None:
        """Remove every container and volume this made (stopping what still runs)."""
        for argv in (
            *(["rm", "--force", "--time=5", name] for name in self.containers),
            *(["volume", "rm", "--force", volume] for volume in self.volumes),
        ):
            subprocess.run(["podman", *argv], env=self.env, capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def media_image() -> str:
    """Media's image, built with the base from the Dockerfiles once per session (buildah's
    layer cache keeps a rebuild of unchanged steps quick)."""
    [tag] = images.build(["media"], root=ROOT, cache=CACHE, quiet=True)
    return tag


@pytest.fixture
def podman() -> Iterator[Podman]:
    """podman for one test; its containers and volumes are removed at the end."""
    runner = Podman()
    yield runner
    runner.remove_all()
