"""The CDK app synthesized once per session and environment (jsii and synthesis take
seconds), shared by every deploy test as `Synthesized` objects."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# jsii's node process reads these at start: the development machines run Node 20.
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import aws_cdk as cdk
import jsii._runtime
import pytest
from aws_cdk.assertions import Template

from longhaul.spec import ServiceSpec
from longhaul_deploy.app import CONTEXT, SERVICES, build
from longhaul_deploy.console_stack import ConsoleStack
from longhaul_deploy.platform import PlatformStack
from longhaul_deploy.service_stack import ServiceStack
from tests.unit.deploy.specs import FIXTURE_SPECS

CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/11111111-2222-3333-4444-555555555555"


@pytest.fixture(scope="session", autouse=True)
def _jsii_runtime_ends_with_the_session() -> Iterator[None]:
    """The CDK's node process (jsii's kernel, started when aws_cdk is imported) is asked to
    exit and waited for once the deploy tests' session ends, before the session's check that
    no process is left behind; otherwise it would end only with the interpreter."""
    yield
    provider = jsii._runtime.kernel.provider
    process = getattr(provider, "_process", None)
    if process is not None:
        process.stop()  # also unregisters its own exit hook


@dataclass
class Synthesized:
    """One synthesized app: its stacks, their templates, and the cloud assembly on disk."""

    env: str
    outdir: Path
    platform: PlatformStack
    console: ConsoleStack
    services: dict[str, ServiceStack]
    specs: dict[str, ServiceSpec]
    templates: dict[str, Template] = field(default_factory=dict)

    def template(self, name: str) -> Template:
        """The template of the platform (`platform`), the console (`console`) or a service
        (by spec name)."""
        return self.templates[name]

    def resources(self, name: str, kind: str) -> dict[str, dict[str, Any]]:
        """Every resource of `kind` in `name`'s template, by logical id."""
        found = self.template(name).find_resources(kind)
        return {logical_id: dict(resource) for logical_id, resource in found.items()}

    def raw(self, name: str) -> dict[str, Any]:
        """The whole template of `name` as a dict."""
        return dict(self.template(name).to_json())

    @property
    def template_files(self) -> list[Path]:
        """The template files in the cloud assembly."""
        return sorted(self.outdir.glob("*.template.json"))

    @property
    def validation_report(self) -> dict[str, Any]:
        """The policy validation report (cdk-nag and CDK's own template rules)."""
        report: dict[str, Any] = json.loads((self.outdir / "validation-report.json").read_text())
        return report


def _synthesize(
    outdir: Path, context: dict[str, Any], specs: tuple[ServiceSpec, ...]
) -> Synthesized:
    app = cdk.App(outdir=str(outdir), context={**CONTEXT, **context})
    # The fixture specs have no Dockerfile of their own; media's stands in.
    dockerfile = None if specs == SERVICES else "services/media/Dockerfile"
    platform, *services, console = build(app, services=specs, dockerfile=dockerfile)
    assert isinstance(platform, PlatformStack)
    assert isinstance(console, ConsoleStack)
    app.synth()
    by_name = {stack.spec.name: stack for stack in services if isinstance(stack, ServiceStack)}
    synthesized = Synthesized(
        env=str(context.get("env", "dev")),
        outdir=outdir,
        platform=platform,
        console=console,
        services=by_name,
        specs={name: stack.spec for name, stack in by_name.items()},
    )
    synthesized.templates["platform"] = Template.from_stack(platform)
    synthesized.templates["console"] = Template.from_stack(console)
    for name, stack in by_name.items():
        synthesized.templates[name] = Template.from_stack(stack)
    return synthesized


@pytest.fixture(scope="session")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The app as `make synth` builds it: dev, no certificate given."""
    return _synthesize(tmp_path_factory.mktemp("cdk-dev"), {"env": "dev"}, SERVICES)


@pytest.fixture(scope="session")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The app for prod, as a deployment would run it (certificate and alarm email given)."""
    return _synthesize(
        tmp_path_factory.mktemp("cdk-prod"),
        {"env": "prod", "certificateArn": CERTIFICATE, "alarmEmail": "ops@example.com"},
        SERVICES,
    )


@pytest.fixture(scope="session")
def fixture_app(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """Stacks for the fixture specs (secrets, platform rules, an API-only service)."""
    return _synthesize(tmp_path_factory.mktemp("cdk-fixture"), {"env": "dev"}, FIXTURE_SPECS)


@pytest.fixture(scope="session", params=["dev", "prod", "fixture"])
def any_app(request: pytest.FixtureRequest) -> Synthesized:
    """Each synthesized app in turn."""
    name = {"fixture": "fixture_app"}.get(request.param, request.param)
    synthesized: Synthesized = request.getfixturevalue(name)
    return synthesized


@pytest.fixture(scope="session")
def dev_moved(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The dev app again with one change to media's path rule (its priority, from its port),
    as the next `cdk deploy` of an edited rule would send it."""
    # Media alone: the other services' stacks do not depend on media's rule.
    specs = tuple(
        spec.model_copy(update={"port": spec.port + 7}) for spec in SERVICES if spec.name == "media"
    )
    return _synthesize(tmp_path_factory.mktemp("cdk-dev-moved"), {"env": "dev"}, specs)
