"""The GitHub Actions workflow: valid against SchemaStore's workflow schema, runs the same
targets a person runs on every pull request, and deploys from main through OIDC only."""

from __future__ import annotations

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


def test_deploys_run_only_from_main_after_the_tests_dev_before_prod(
    workflow: dict[Any, Any],
) -> None:
    jobs = _deploy_jobs(workflow)
    assert sorted(jobs) == ["deploy-dev", "deploy-prod"]
    assert jobs["deploy-dev"]["needs"] == "test"
    assert jobs["deploy-prod"]["needs"] == "deploy-dev"
    for name, job in jobs.items():
        env = name.removeprefix("deploy-")
        assert job["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
        assert job["environment"] == env
        assert job["concurrency"] == {"group": f"deploy-{env}", "cancel-in-progress": False}
        deploy = _runs(job)[-1]
        assert re.search(r"aws-cdk@\$\{CDK_CLI_VERSION\}\" deploy --all", deploy)
        assert f"--context env={env}" in deploy
        assert "docker build -f Dockerfile.base --target base -t longhaul-base ." in _runs(job)


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
