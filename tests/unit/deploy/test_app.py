"""The app as a whole: its stacks, cdk-nag's AwsSolutions pack (every finding fixed or
acknowledged beside its resource, with a reason), CDK's own template rules, and the
image asset."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Annotations, Match

from longhaul_deploy.app import CONTEXT, SERVICES, build
from longhaul_deploy.config import settings_for
from longhaul_deploy.image import REPO_ROOT, named_contexts
from tests.unit.deploy.conftest import Synthesized

# Every rule the app acknowledges, and why it may (the reasons themselves sit beside the
# resources in deploy/ and are copied into the templates' metadata).
ACKNOWLEDGED_RULES = {
    "AwsSolutions-S1",  # the log bucket does not log into itself
    "AwsSolutions-EC23",  # the public ALB is open on 443/80 by design, behind WAF
    "AwsSolutions-COG3",  # threat protection needs Cognito's Plus plan
    "AwsSolutions-COG8",  # same
    "AwsSolutions-SQS3",  # the DLQ has no DLQ of its own
    "AwsSolutions-ECS2",  # the environment holds names and ARNs, never secret values
    "AwsSolutions-IAM5",  # bucket objects, cluster tasks, listener rules, ecr:GetAuthorizationToken
    "AwsSolutions-IAM4",  # ECS's managed policy for blue/green load balancer shifts
    "AwsSolutions-SMG4",  # declared secrets are rotated by hand
    "AwsSolutions-AS3",  # GPU instances: no mail per instance managed scaling starts or stops
}


def _acknowledgements(synthesized: Synthesized) -> list[dict[str, Any]]:
    """The app's own acknowledgements (CDK adds some of its template rules' by itself)."""
    found = []
    for name in synthesized.templates:
        for resource in synthesized.raw(name)["Resources"].values():
            found += resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    return [a for a in found if a["id"].startswith("AwsSolutions-")]


def test_app_has_the_platform_stack_and_one_stack_per_service(dev: Synthesized) -> None:
    assert set(dev.templates) == {"platform", "console", *(spec.name for spec in SERVICES)}
    assert dev.platform.stack_name == "longhaul-dev-platform"
    assert dev.console.stack_name == "longhaul-dev-console"
    assert [stack.stack_name for stack in dev.services.values()] == [
        f"longhaul-dev-{spec.name}" for spec in SERVICES
    ]


def test_unknown_environment_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="known: dev, prod"):
        settings_for("staging")


def test_validation_reports_no_finding_in_any_app(any_app: Synthesized) -> None:
    # Synthesis raises on any unacknowledged cdk-nag error; the report must also be empty of
    # warnings (cdk-nag's and CDK's own CloudFormation rules).
    violations = [
        (report["pluginName"], violation["ruleName"], violation["severity"])
        for report in any_app.validation_report["pluginReports"]
        for violation in report["violations"]
    ]
    assert violations == []


def test_an_unacknowledged_finding_fails_synthesis(tmp_path: Path) -> None:
    app = cdk.App(outdir=str(tmp_path), context=CONTEXT)
    platform, *_ = build(app, services=())  # the platform alone is enough to break
    s3.Bucket(platform, "Careless")  # no TLS policy, no access logs
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    rules = {v["ruleName"] for p in report["pluginReports"] for v in p["violations"]}
    assert {"AwsSolutions-S1", "AwsSolutions-S10"} <= rules


def test_every_acknowledgement_names_a_known_rule_and_gives_a_reason(any_app: Synthesized) -> None:
    acknowledgements = _acknowledgements(any_app)
    assert acknowledgements
    for acknowledgement in acknowledgements:
        rule = re.sub(r"\[.*\]$", "", acknowledgement["id"])
        assert rule in ACKNOWLEDGED_RULES, acknowledgement
        assert len(acknowledgement["reason"]) > 40, acknowledgement


def test_wildcard_resources_are_acknowledged_one_by_one(dev: Synthesized) -> None:
    findings = {a["id"] for a in _acknowledgements(dev) if a["id"].startswith("AwsSolutions-IAM5")}
    assert findings == {
        "AwsSolutions-IAM5[Resource::*]",
        "AwsSolutions-IAM5[Resource::<BucketD7FEB781.Arn>/*]",
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ecs:us-east-1:<AWS::AccountId>"
        ":task/longhaul-dev/*]",
        # the APIs' production rules: only the platform load balancer's
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:elasticloadbalancing:us-east-1:"
        "<AWS::AccountId>:listener-rule/<EdgeLoadBalancer9EA98EDF.LoadBalancerFullName>/*]",
        # the GPU worker's tasks and instances, in its own cluster
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ecs:us-east-1:<AWS::AccountId>"
        ":task/longhaul-dev-training-gpu/*]",
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ecs:us-east-1:<AWS::AccountId>"
        ":container-instance/longhaul-dev-training-gpu/*]",
        # the lake's files, for its readers
        "AwsSolutions-IAM5[Resource::<BucketD7FEB781.Arn>/lake/events/*]",
    }


def test_synthesis_without_a_certificate_warns(dev: Synthesized, prod: Synthesized) -> None:
    warning = Match.string_like_regexp("certificateArn")
    assert Annotations.from_stack(dev.platform).find_warning("*", warning)
    assert not Annotations.from_stack(prod.platform).find_warning("*", warning)


def test_image_asset_builds_the_service_dockerfile_from_the_repository_root(
    dev: Synthesized,
) -> None:
    for spec in SERVICES:
        stack = dev.services[spec.name]
        manifest = json.loads((dev.outdir / f"{stack.stack_name}.assets.json").read_text())
        ((image,),) = [list(manifest["dockerImages"].values())]
        source = image["source"]
        assert source["dockerFile"] == f"services/{spec.name}/Dockerfile"
        assert source["platform"] == "linux/amd64"
        # the folders its Dockerfile mounts, as `make images` gives them (training's wheel)
        dockerfile = (REPO_ROOT / f"services/{spec.name}/Dockerfile").read_text()
        assert source.get("dockerBuildContexts", {}) == named_contexts(dockerfile)
        if "from=torch-wheels" in dockerfile:
            assert set(source["dockerBuildContexts"]) == {"torch-wheels"}
        staged = dev.outdir / source["directory"]
        # Only what the Dockerfiles copy; no caches, no virtualenv, no cdk.out. The CDK
        # stages the context's .dockerignore beside it (the builder reads it).
        assert sorted(p.name for p in staged.iterdir()) == [
            ".dockerignore",
            "Dockerfile.base",
            "common",
            "requirements-runtime.txt",
            "services",
        ]
        assert (staged / f"services/{spec.name}/Dockerfile").read_text() == (
            REPO_ROOT / f"services/{spec.name}/Dockerfile"
        ).read_text()
        assert not list(staged.rglob("__pycache__"))


def test_service_dockerfile_starts_from_the_base_image() -> None:
    for spec in SERVICES:
        dockerfile = (REPO_ROOT / f"services/{spec.name}/Dockerfile").read_text()
        assert re.search(r"^FROM longhaul-base\s*$", dockerfile, re.MULTILINE)
    assert re.search(r"^FROM \S+ AS base$", (REPO_ROOT / "Dockerfile.base").read_text(), re.M)
