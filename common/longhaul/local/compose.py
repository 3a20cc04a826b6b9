"""docker-compose.yml, generated from the specs so that ports and environment are the dev
runner's own (`make compose` writes it; a test checks the committed file is current).

Every container runs on the host's network (`network_mode: host`), as `make dev`'s
processes do: the emulator listens on 127.0.0.1:4566, each role on its spec's port, and a
role's environment is exactly the one the dev runner gives it. So the URLs the services
hand out (media's presigned upload and playback URLs, signed for the emulator's address)
resolve and verify from the host as they do in the containers. docs/compose.md says why
(and what it costs on Docker Desktop).

The images are the project's own: the emulator (`Dockerfile.emulator`: the moto server
`make dev` and the tests run, inside longhaul.local.emulator), the platform tools
(Dockerfile.base's `platform` stage, for `longhaul provision`) and each service's image.
Their names are the ones `make images` (longhaul.local.images) tags, so compose can run
what buildah built (`--no-build`) or build them itself with Docker (`pull_policy: build`:
these names are never pulled from a registry).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from longhaul.local import platform
from longhaul.spec import ServiceSpec

__all__ = [
    "BASE_IMAGE",
    "COMPOSE_ENDPOINT",
    "COMPOSE_HOST",
    "EMULATOR_IMAGE",
    "MOUNTED_CONTEXTS",
    "PLATFORM_IMAGE",
    "compose_document",
    "health_command",
    "image_name",
    "mounted_contexts",
    "render",
]

REGION = platform.DEFAULT_REGION
ENV = platform.DEFAULT_ENV
# The host's network: the same addresses as `make dev`.
COMPOSE_HOST = "127.0.0.1"
COMPOSE_ENDPOINT = platform.DEFAULT_ENDPOINT
# The name the services' Dockerfiles start FROM.
BASE_IMAGE = "longhaul-base"
# The named build contexts a Dockerfile may mount (`RUN --mount=...,from=NAME`), each as
# the variable that names its folder and the folder when it is unset: training's PyTorch
# CPU wheel (docs/training.md "PyTorch"). `make images`, the CDK app and compose give the
# same folder.
MOUNTED_CONTEXTS = {"torch-wheels": ("TORCH_WHEELS", "/opt/wheels")}
MOUNT = re.compile(r"--mount=\S*\bfrom=([A-Za-z0-9_-]+)")
HEADER = "# Generated from the service specs by `make compose`; edit the specs, not this file.\n"


def image_name(name: str) -> str:
    """The local name of image `name` (`longhaul-<name>`), as `make images` tags it."""
    return f"localhost/longhaul-{name}:latest"


EMULATOR_IMAGE = image_name("emulator")
PLATFORM_IMAGE = image_name("platform")


def health_command(url: str) -> list[str]:
    """A healthcheck that GETs `url` from inside the container with the image's Python (the
    images have no curl). A shell command (CMD-SHELL), which podman-compose passes on as
    it is; its list form (CMD) it mangles."""
    code = f"import urllib.request; urllib.request.urlopen('{url}', timeout=3)"
    return ["CMD-SHELL", f'python -c "{code}"']


def mounted_contexts(dockerfile: str) -> list[str]:
    """The named build contexts `dockerfile` mounts; an unknown one is an error."""
    named = sorted(set(MOUNT.findall(dockerfile)))
    unknown = [n for n in named if n not in MOUNTED_CONTEXTS]
    if unknown:
        raise RuntimeError(f"the Dockerfile mounts build contexts nobody provides: {unknown}")
    return named


def _from_base(dockerfile: str, root: Path) -> dict[str, Any]:
    """The build of an image whose Dockerfile starts FROM longhaul-base: the `base`
    service's image under that name, and the folders the Dockerfile mounts (`${VARIABLE:-
    default}`, as `make images` resolves them)."""
    contexts = {BASE_IMAGE: "service:base"}
    path = root / dockerfile
    for name in mounted_contexts(path.read_text()) if path.is_file() else []:
        variable, default = MOUNTED_CONTEXTS[name]
        contexts[name] = f"${{{variable}:-{default}}}"
    return {"context": ".", "dockerfile": dockerfile, "additional_contexts": contexts}


def compose_document(specs: list[ServiceSpec], root: Path = Path()) -> dict[str, Any]:
    """The compose document for `specs`, with the Dockerfiles in `root` (the repository)."""
    auth = platform.expected_auth(ENV, REGION)
    port = platform.MOTO_PORT
    services: dict[str, Any] = {
        "moto": {
            "build": _from_base("Dockerfile.emulator", root),
            "image": EMULATOR_IMAGE,
            "pull_policy": "build",
            "network_mode": "host",
            "command": ["--host", COMPOSE_HOST, "--port", str(port)],
            "environment": dict(platform.MOTO_ENV),
            "healthcheck": {
                "test": health_command(f"http://{COMPOSE_HOST}:{port}/moto-api/"),
                "interval": "2s",
                "timeout": "5s",
                "retries": 30,
            },
        },
        # Built for the others (their Dockerfiles start FROM it); it runs nothing.
        "base": {
            "build": {"context": ".", "dockerfile": "Dockerfile.base", "target": "base"},
            "image": image_name("base"),
            "pull_policy": "build",
            "network_mode": "none",
            "command": ["python", "-c", "pass"],
        },
        "provision": {
            "build": {"context": ".", "dockerfile": "Dockerfile.base", "target": "platform"},
            "image": PLATFORM_IMAGE,
            "pull_policy": "build",
            "network_mode": "host",
            "command": ["longhaul", "provision", "--endpoint", COMPOSE_ENDPOINT],
            "environment": {"AWS_REGION": REGION, **platform.DUMMY_CREDENTIALS},
            "depends_on": {"moto": {"condition": "service_healthy"}},
        },
    }
    for spec in specs:
        for role in ("api", "worker"):
            role_port = spec.worker_port if role == "worker" else spec.port
            services[f"{spec.name}-{role}"] = {
                "build": _from_base(f"services/{spec.name}/Dockerfile", root),
                "image": image_name(spec.name),
                "pull_policy": "build",
                "network_mode": "host",
                "command": ["--role", role],
                "environment": platform.role_environment(
                    spec,
                    role,
                    env=ENV,
                    region=REGION,
                    endpoint=COMPOSE_ENDPOINT,
                    auth=auth,
                    host=COMPOSE_HOST,
                ),
                "healthcheck": {
                    "test": health_command(f"http://{COMPOSE_HOST}:{role_port}/healthz"),
                    "interval": "5s",
                    "timeout": "5s",
                    "retries": 3,
                    "start_period": "60s",
                },
                "depends_on": {"provision": {"condition": "service_completed_successfully"}},
                "stop_grace_period": "120s",
            }
    return {"name": "longhaul", "services": services}


def render(specs: list[ServiceSpec], root: Path = Path()) -> str:
    """docker-compose.yml's text (`root`: the repository, where the Dockerfiles are)."""
    return HEADER + yaml.safe_dump(compose_document(specs, root), sort_keys=False, width=120)
