"""The GitHub Actions workflow: valid against SchemaStore's workflow schema, runs the same
targets a person runs on every pull request, gates every deploy on the tests, the dependency
scan and the image tests, smoke-tests each environment before the next one starts, and
deploys from main through OIDC only."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from longhaul_deploy.image import REPO_ROOT

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "ci.yml"
CHECK_JSONSCHEMA = Path(sys.executable).with_name("check-jsonschema")


@pytest.fixture(scope="module")
def workflow() -> dict[Any, Any]:
    document: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    return document


def _triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    # YAML 1.1 reads the bare key `on` as the boolean True.
    triggers: dict[str, Any] = workflow["on"] if "on" in workflow else workflow[True]
    return triggers


def _steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = job["steps"]
    return steps


def _runs(job: dict[str, Any]) -> list[str]:
    return [" ".join(str(step["run"]).split()) for step in _steps(job) if "run" in step]


def _deploy_jobs(workflow: dict[Any, Any]) -> dict[str, dict[str, Any]]:
    return {name: job for name, job in workflow["jobs"].items() if name.startswith("deploy")}


def _deploy_command(job: dict[str, Any]) -> str:
    (command,) = [run for run in _runs(job) if "deploy --all" in run]
    return command


def test_workflow_is_valid_against_the_github_workflow_schema() -> None:
    result = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_pull_requests_run_make_test_and_make_synth(workflow: dict[Any, Any]) -> None:
    triggers = _triggers(workflow)
    assert "pull_request" in triggers
    assert triggers["push"]["branches"] == ["main"]
    test = workflow["jobs"]["test"]
    assert "if" not in test
    assert _runs(test) == ["make test", "make synth"]


def test_pull_requests_run_the_dependency_scan_and_the_image_tests(
    workflow: dict[Any, Any],
) -> None:
    audit, images = workflow["jobs"]["audit"], workflow["jobs"]["images"]
    assert "if" not in audit
    assert "if" not in images
    assert _runs(audit) == ["make audit"]
    (test_images,) = [s for s in _steps(images) if "make test-images" in str(s.get("run", ""))]
    # On GitHub's runners a registry is reachable: the registry's base, not the stand-in.
    assert test_images["env"]["PYTHON_IMAGE"] == "docker.io/library/python:3.11-slim-bookworm"
    assert "permissions" not in audit
    assert "permissions" not in images


def test_the_scan_audits_the_cdk_cli_version_the_deploys_run(workflow: dict[Any, Any]) -> None:
    package = json.loads((REPO_ROOT / "deploy" / "cli" / "package.json").read_text())
    assert workflow["env"]["CDK_CLI_VERSION"] == package["dependencies"]["aws-cdk"]


def test_deploys_run_only_from_main_after_the_tests_dev_before_prod(
    workflow: dict[Any, Any],
) -> None:
    jobs = _deploy_jobs(workflow)
    assert sorted(jobs) == ["deploy-dev", "deploy-prod"]
    assert jobs["deploy-dev"]["needs"] == ["test", "audit", "images"]
    assert jobs["deploy-prod"]["needs"] == "deploy-dev"
    for name, job in jobs.items():
        env = name.removeprefix("deploy-")
        assert job["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
        assert job["environment"] == env
        assert job["concurrency"] == {"group": f"deploy-{env}", "cancel-in-progress": False}
        deploy = _deploy_command(job)
        assert re.search(r"aws-cdk@\$\{CDK_CLI_VERSION\}\" deploy --all", deploy)
        assert f"--context env={env}" in deploy
        assert "docker build -f Dockerfile.base --target base -t longhaul-base ." in _runs(job)


def test_each_deploy_ends_with_a_smoke_test_of_its_environment_so_prod_waits_for_devs(
    workflow: dict[Any, Any],
) -> None:
    for name, job in _deploy_jobs(workflow).items():
        env = name.removeprefix("deploy-")
        runs = _runs(job)
        smoke = runs[-1]  # the job's last step: it fails the job, and prod needs the job
        assert runs.index(_deploy_command(job)) == len(runs) - 2
        assert smoke.startswith(".venv/bin/longhaul smoke ")
        assert f"--env {env}" in smoke
        assert '--url "${API_URL}"' in smoke
        (step,) = [s for s in _steps(job) if "longhaul smoke" in str(s.get("run", ""))]
        assert step["env"] == {"API_URL": "${{ vars.API_URL }}"}
        # the pool and app client of the stacks just deployed
        assert "--outputs-file cdk-outputs.json" in _deploy_command(job)
        assert "--outputs cdk-outputs.json" in smoke
        assert "continue-on-error" not in step


def test_deploys_take_credentials_from_oidc_and_no_job_holds_keys(
    workflow: dict[Any, Any],
) -> None:
    assert workflow["permissions"] == {"contents": "read"}
    for job in _deploy_jobs(workflow).values():
        assert job["permissions"] == {"contents": "read", "id-token": "write"}
        (credentials,) = [
            s
            for s in _steps(job)
            if str(s.get("uses", "")).startswith("aws-actions/configure-aws-credentials@")
        ]
        assert set(credentials["with"]) == {"role-to-assume", "role-session-name", "aws-region"}
        assert credentials["with"]["role-to-assume"] == "${{ vars.AWS_DEPLOY_ROLE_ARN }}"
    assert "id-token" not in str(workflow["jobs"]["test"].get("permissions", {}))
    text = WORKFLOW.read_text()
    for forbidden in (
        "aws-access-key-id",
        "aws-secret-access-key",
        "AWS_ACCESS_KEY_ID",
        "secrets.",
    ):
        assert forbidden not in text


def test_every_action_is_pinned_to_a_major_version_or_a_commit(workflow: dict[Any, Any]) -> None:
    for job in workflow["jobs"].values():
        for step in _steps(job):
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@(v\d+|[0-9a-f]{40})", step["uses"]), step
