"""docker-compose.yml, generated from the specs so that ports and environment are the dev
runner's own (`make compose` writes it; a test checks the committed file is current)."""

from __future__ import annotations

from typing import Any

import yaml

from longhaul.local import platform
from longhaul.spec import ServiceSpec

__all__ = ["BASE_IMAGE", "COMPOSE_ENDPOINT", "compose_document", "render"]

REGION = platform.DEFAULT_REGION
ENV = platform.DEFAULT_ENV
COMPOSE_ENDPOINT = f"http://moto:{platform.MOTO_PORT}"
BASE_IMAGE = "longhaul-base"
HEADER = "# Generated from the service specs by `make compose`; edit the specs, not this file.\n"


def compose_document(specs: list[ServiceSpec]) -> dict[str, Any]:
    """The compose document for `specs`."""
    auth = platform.expected_auth(ENV, REGION)
    moto_health = (
        "import urllib.request; "
        f"urllib.request.urlopen('http://127.0.0.1:{platform.MOTO_PORT}/moto-api/')"
    )
    services: dict[str, Any] = {
        "moto": {
            "image": f"motoserver/moto:{platform.MOTO_VERSION}",
            "environment": {"MOTO_PORT": str(platform.MOTO_PORT), **platform.MOTO_ENV},
            "ports": [f"{platform.MOTO_PORT}:{platform.MOTO_PORT}"],
            "healthcheck": {
                "test": ["CMD", "python", "-c", moto_health],
                "interval": "2s",
                "retries": 30,
            },
        },
        "base": {
            "build": {"context": ".", "dockerfile": "Dockerfile.base", "target": "base"},
            "image": f"{BASE_IMAGE}:local",
            "command": ["python", "-c", "pass"],
        },
        "provision": {
            "build": {"context": ".", "dockerfile": "Dockerfile.base", "target": "platform"},
            "command": ["longhaul", "provision", "--endpoint", COMPOSE_ENDPOINT],
            "environment": {"AWS_REGION": REGION, **platform.DUMMY_CREDENTIALS},
            "depends_on": {"moto": {"condition": "service_healthy"}},
        },
    }
    for spec in specs:
        for role in ("api", "worker"):
            port = spec.worker_port if role == "worker" else spec.port
            services[f"{spec.name}-{role}"] = {
                "build": {
                    "context": ".",
                    "dockerfile": f"services/{spec.name}/Dockerfile",
                    "additional_contexts": {BASE_IMAGE: "service:base"},
                },
                "command": ["--role", role],
                "ports": [f"{port}:{port}"],
                "environment": platform.role_environment(
                    spec,
                    role,
                    env=ENV,
                    region=REGION,
                    endpoint=COMPOSE_ENDPOINT,
                    auth=auth,
                    host="0.0.0.0",  # noqa: S104 - inside the container, published by `ports`
                ),
                "depends_on": {"provision": {"condition": "service_completed_successfully"}},
                "stop_grace_period": "120s",
            }
    return {"name": "longhaul", "services": services}


def render(specs: list[ServiceSpec]) -> str:
    """docker-compose.yml's text."""
    return HEADER + yaml.safe_dump(compose_document(specs), sort_keys=False, width=120)
