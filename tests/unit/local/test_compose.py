"""docker-compose.yml and the Dockerfiles agree with the dev runner: the same environment on
the same (host) network, the project's own emulator, the images `make images` tags, a
healthcheck per role, and a build context that lets in what the Dockerfiles copy. Parsed
here; tests/images/test_compose.py runs the file with podman-compose."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from longhaul.api.health import router as health_router
from longhaul.local import images
from longhaul.local.compose import (
    BASE_IMAGE,
    COMPOSE_ENDPOINT,
    COMPOSE_HOST,
    EMULATOR_IMAGE,
    MOUNTED_CONTEXTS,
    PLATFORM_IMAGE,
    compose_document,
    render,
)
from longhaul.local.discovery import discover
from longhaul.local.platform import (
    DEFAULT_ENDPOINT,
    MOTO_ENV,
    MOTO_PORT,
    MOTO_VERSION,
    expected_auth,
    role_environment,
)
from longhaul.local.runner import DevRunner
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


def _copied_paths(dockerfile: Path) -> set[str]:
    """The first path component of each COPY source (a build-context path)."""
    found = set()
    for match in re.finditer(r"^COPY\s+(?:--\S+\s+)*(\S+)\s", dockerfile.read_text(), re.M):
        found.add(match.group(1).split("/")[0])
    return found


def contexts_of(spec: ServiceSpec) -> dict[str, str]:
    """The build contexts a service's compose build gets: the base under the name its
    Dockerfile starts FROM, and each folder its Dockerfile mounts, as `make images` gives
    it (the same variable, the same default)."""
    contexts = {BASE_IMAGE: "service:base"}
    dockerfile = ROOT / "services" / spec.name / "Dockerfile"
    if dockerfile.is_file():
        for argument in images.build_contexts(dockerfile.read_text()):
            name, _, folder = argument.removeprefix("--build-context=").partition("=")
            variable, default = MOUNTED_CONTEXTS[name]
            assert folder == os.environ.get(variable, default)
            contexts[name] = f"${{{variable}:-{default}}}"
    return contexts


def _check_roles(document: dict[str, Any], specs: list[ServiceSpec]) -> None:
    services = document["services"]
    auth = expected_auth("local", "us-east-1")
    for spec in specs:
        for role, port in (("api", spec.port), ("worker", spec.worker_port)):
            entry = services[f"{spec.name}-{role}"]
            assert entry["command"] == ["--role", role]
            # The host's network, as `make dev`: nothing to publish, the runner's addresses.
            assert entry["network_mode"] == "host"
            assert "ports" not in entry
            runner = role_environment(
                spec,
                role,
                env="local",
                region="us-east-1",
                endpoint=DEFAULT_ENDPOINT,
                auth=auth,
                host="127.0.0.1",
            )
            assert entry["environment"] == runner
            assert entry["environment"]["LONGHAUL_PORT"] == str(port)
            assert entry["build"]["dockerfile"] == f"services/{spec.name}/Dockerfile"
            assert entry["build"]["additional_contexts"] == contexts_of(spec)
            assert entry["image"] == images.service_tag(spec.name)
            assert entry["depends_on"]["provision"]["condition"] == "service_completed_successfully"
            kind, command = entry["healthcheck"]["test"]
            assert kind == "CMD-SHELL"
            assert f"'http://127.0.0.1:{port}/healthz'" in command


def test_committed_compose_file_is_generated_from_the_current_specs() -> None:
    committed = (ROOT / "docker-compose.yml").read_text()
    assert committed == render(discover(), ROOT), "run `make compose` and commit docker-compose.yml"


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
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4566"
    assert env["LONGHAUL_QUEUE_NAME"] == "longhaul-local-echo"
    assert env["LONGHAUL_SECRET_IDS"] == '{"api-key": "longhaul/local/echo/api-key"}'
    # The addresses are the dev runner's own, so URLs signed inside a container (media's
    # presigned uploads and outputs) resolve from the host.
    runner = DevRunner([ECHO])
    assert (runner.endpoint, runner.host) == (COMPOSE_ENDPOINT, COMPOSE_HOST)


def test_the_healthchecks_ask_the_kits_liveness_route() -> None:
    paths = {getattr(route, "path", None) for route in health_router.routes}
    assert "/healthz" in paths
    moto = compose_document([])["services"]["moto"]
    kind, command = moto["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    assert f"'http://127.0.0.1:{MOTO_PORT}/moto-api/'" in command


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
    assert document["services"]["provision"]["image"] == PLATFORM_IMAGE


def test_compose_runs_the_projects_emulator_at_the_pinned_moto() -> None:
    moto = compose_document([])["services"]["moto"]
    assert moto["image"] == EMULATOR_IMAGE
    assert moto["build"] == {
        "context": ".",
        "dockerfile": "Dockerfile.emulator",
        "additional_contexts": {BASE_IMAGE: "service:base"},
    }
    assert moto["network_mode"] == "host"
    assert moto["command"] == ["--host", "127.0.0.1", "--port", str(MOTO_PORT)]
    assert moto["environment"] == MOTO_ENV
    dockerfile = ROOT / "Dockerfile.emulator"
    text = dockerfile.read_text()
    # The program `make dev` starts, on the kit's base, with moto resolved under the
    # workspace's pins (which pin the version the tests run).
    assert _stages(dockerfile) == {"stage0": BASE_IMAGE}
    assert 'ENTRYPOINT ["python", "-m", "longhaul.local.emulator"]' in text
    assert 'pip install --constraint /tmp/workspace-pins.txt "moto[server]"' in text
    assert "grep -v '^-e ' /app/requirements.txt > /tmp/workspace-pins.txt" in text
    assert f"moto=={MOTO_VERSION}" in (ROOT / "requirements.txt").read_text()
    assert "moto[server]==" + MOTO_VERSION in (ROOT / "pyproject.toml").read_text()


def test_training_builds_with_the_wheel_folder_make_images_gives() -> None:
    document = compose_document(discover(), ROOT)
    for role in ("api", "worker"):
        contexts = document["services"][f"training-{role}"]["build"]["additional_contexts"]
        assert contexts["torch-wheels"] == "${TORCH_WHEELS:-/opt/wheels}"


def test_make_images_builds_every_image_compose_runs_by_its_name() -> None:
    document = compose_document(discover(), ROOT)
    built = {images.service_tag(spec.name) for spec in discover()} | set(images.TOOLS)
    named = {entry["image"] for name, entry in document["services"].items() if name != "base"}
    assert named == built
    assert images.TOOLS[EMULATOR_IMAGE] == ("Dockerfile.emulator", None)
    assert images.TOOLS[PLATFORM_IMAGE] == ("Dockerfile.base", "platform")


def test_the_build_context_lets_in_what_the_dockerfiles_copy_and_nothing_else() -> None:
    assert images.IGNORE_FILE == ".dockerignore"
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line for line in lines if line and not line.startswith("#")]
    assert patterns[0] == "*", "an allow-list: everything else stays out"
    allowed = {p[1:] for p in patterns if p.startswith("!")}
    dockerfiles = [ROOT / "Dockerfile.base", ROOT / "Dockerfile.emulator"]
    dockerfiles += sorted((ROOT / "services").glob("*/Dockerfile"))
    copied = set().union(*(_copied_paths(d) for d in dockerfiles))
    assert copied == allowed - {"Dockerfile.base"}
    for cache in ("__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "node_modules"):
        assert f"**/{cache}" in patterns
