"""longhaul.local.podman_host, the podman that docs/compose.md and tests/images/test_compose.py
give Debian's podman-compose 1.0.3: it drops the project network from a host-network `run`
or `create` and changes nothing else, and podman-compose can run its file as a program."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from longhaul.local import podman_host

HOST_RUN = ["--name=x", "-d", "--network", "host", "-e", "A=1", "--net", "p_default"]
HOST_RUN += ["--network-alias", "moto", "--healthcheck-command", "/bin/sh -c 'true'"]


def test_a_host_network_run_loses_only_the_project_network() -> None:
    drop = podman_host.without_project_network
    assert drop(HOST_RUN) == HOST_RUN[:6] + HOST_RUN[-2:]
    bridge = ["--name=x", "--net", "p_default", "--network-alias", "moto"]
    assert drop(bridge) == bridge
    argv = [*HOST_RUN, "localhost/longhaul-emulator:latest", "--host", "127.0.0.1"]
    assert podman_host.options_end(argv) == len(HOST_RUN)


def test_the_command_keeps_the_image_and_its_arguments_and_passes_the_rest_through() -> None:
    image = ["localhost/longhaul-emulator:latest", "--net", "kept-as-an-argument"]
    assert podman_host.podman_argv(["run", *HOST_RUN, *image]) == [
        "podman",
        "run",
        *HOST_RUN[:6],
        *HOST_RUN[-2:],
        *image,
    ]
    other = ["network", "rm", "--net", "x"]
    assert podman_host.podman_argv(other) == ["podman", *other]


def test_podman_compose_can_run_the_file_as_podman(tmp_path: Path) -> None:
    # podman-compose takes --podman-path only if it is an executable file; its `#!` line
    # runs it with the system's python3, which needs no package of the project.
    path = Path(podman_host.__file__)
    assert os.access(path, os.X_OK)
    assert path.read_text().startswith("#!/usr/bin/env python3\n")
    fake = tmp_path / "podman"  # stands in for podman: prints the arguments it was given
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}
    done = subprocess.run(
        [str(path), "run", *HOST_RUN, "image:1"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["run", *HOST_RUN[:6], *HOST_RUN[-2:], "image:1"]
