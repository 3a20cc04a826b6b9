"""docker-compose.yml and the Dockerfiles agree with the dev runner (no Docker engine runs
here, so they are parsed, not built)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from longhaul.local.compose import BASE_IMAGE, COMPOSE_ENDPOINT, compose_document, render
from longhaul.local.discovery import discover
from longhaul.local.platform import MOTO_VERSION, expected_auth, role_environment
from longhaul.spec import ServiceSpec
from tests.support.echo.spec import SPEC as ECHO

ROOT = Path(__file__).resolve().parents[3]


def _stages(dockerfile: Path) -> dict[str, str]:
    """Stage name -> the image it starts FROM."""
    stages: dict[str, str] = {}
    for match in re.finditer(
        r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", dockerfile.read_text(), re.M | re.I
    ):
        stages[match.group(2) or f"stage{len(stages)}"] = match.group(1)
    return stages


def _check_roles(document: dict[str, Any], specs: list[ServiceSpec]) -> None:
    services = document["services"]
    auth = expected_auth("local", "us-east-1")
    for spec in specs:
        for role, port in (("api", spec.port), ("worker", spec.worker_port)):
            entry = services[f"{spec.name}-{role}"]
            assert entry["command"] == ["--role", role]
            assert entry["ports"] == [f"{port}:{port}"]
            runner = role_environment(
                spec,
                role,
                env="local",
                region="us-east-1",
                endpoint=COMPOSE_ENDPOINT,
                auth=auth,
                host="0.0.0.0",
            )
            assert entry["environment"] == runner
            assert entry["environment"]["LONGHAUL_PORT"] == str(port)
            assert entry["build"]["dockerfile"] == f"services/{spec.name}/Dockerfile"
            assert entry["build"]["additional_contexts"] == {BASE_IMAGE: "service:base"}
            assert entry["depends_on"]["provision"]["condition"] == "service_completed_successfully"


def test_committed_compose_file_is_generated_from_the_current_specs() -> None:
    committed = (ROOT / "docker-compose.yml").read_text()
    assert committed == render(discover()), "run `make compose` and commit docker-compose.yml"


def test_every_discovered_service_has_both_roles_and_a_dockerfile_from_the_base() -> None:
    specs = discover()
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    _check_roles(document, specs)
    for spec in specs:
        dockerfile = ROOT / "services" / spec.name / "Dockerfile"
        assert next(iter(_stages(dockerfile).values())) == BASE_IMAGE
    role_entries = {n for n in document["services"] if n not in {"moto", "base", "provision"}}
    assert role_entries == {f"{s.name}-{r}" for s in specs for r in ("api", "worker")}


def test_compose_for_a_service_carries_the_runners_ports_and_environment() -> None:
    document = yaml.safe_load(render([ECHO]))
    _check_roles(document, [ECHO])
    env = document["services"]["echo-worker"]["environment"]
    assert env["AWS_ENDPOINT_URL"] == "http://moto:4566"
    assert env["LONGHAUL_QUEUE_NAME"] == "longhaul-local-echo"
    assert env["LONGHAUL_SECRET_IDS"] == '{"api-key": "longhaul/local/echo/api-key"}'


def test_base_dockerfile_has_the_stages_compose_builds() -> None:
    stages = _stages(ROOT / "Dockerfile.base")
    document = compose_document([])
    targets = {
        entry["build"]["target"]
        for entry in document["services"].values()
        if entry.get("build", {}).get("dockerfile") == "Dockerfile.base"
    }
    assert targets == {"base", "platform"}
    assert targets <= set(stages)
    text = (ROOT / "Dockerfile.base").read_text()
    # The Python base is a build argument: the registry's image by default (compose, the
    # CDK), a stand-in where no registry is reachable (longhaul.local.images).
    assert stages["base"] == "${PYTHON_IMAGE}"
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim-\S+$", text, re.M)
    assert stages["platform"] == "base"
    assert "USER 10001" in text
    assert "requirements-runtime.txt" in text
    assert (ROOT / "requirements-runtime.txt").exists()


def test_moto_in_compose_is_the_pinned_version() -> None:
    document = compose_document([])
    assert document["services"]["moto"]["image"] == f"motoserver/moto:{MOTO_VERSION}"
    pins = (ROOT / "requirements.txt").read_text()
    assert f"moto=={MOTO_VERSION}" in pins
