"""The CDK app: the platform stack, one stack per service and the console's stack, for the
environment named in the context (`-c env=dev|prod`). Run by `npx cdk synth|diff|deploy`
(cdk.json) and by `make synth`, which needs no CDK CLI."""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import Stack, Validations
from cdk_nag import AwsSolutionsChecks

from longhaul.local.discovery import discover
from longhaul.spec import ServiceSpec
from longhaul_deploy.config import target_of
from longhaul_deploy.console_stack import ConsoleStack
from longhaul_deploy.platform import PlatformStack
from longhaul_deploy.service_stack import ServiceStack

__all__ = ["CONTEXT", "SERVICES", "build", "main"]

# Every installed service (the `longhaul.services` entry points, as `make dev` finds them):
# a new service under services/ gets its stack with no change here.
SERVICES: tuple[ServiceSpec, ...] = tuple(discover())

# Set here rather than in cdk.json, so that `make synth` (no CLI) builds what `cdk` builds.
CONTEXT = {
    # CDK's own template rules (the CloudFormation schema, cross-field checks) fail
    # synthesis instead of warning, as cdk-nag's errors do.
    "@aws-cdk/core:validateAgainstDefaultRules": True,
    # A service stack's imports keep the platform's exports from being removed under it.
    "@aws-cdk/core:defaultCrossStackReferences": "strong",
}


def build(
    app: cdk.App,
    *,
    services: Sequence[ServiceSpec] = SERVICES,
    dockerfile: str | None = None,
) -> list[Stack]:
    """Add the platform stack, a stack per service, the console's stack (last: it knows
    every service) and the cdk-nag checks to `app`.

    `dockerfile` replaces every service's own `services/<name>/Dockerfile` (for tests).
    """
    target = target_of(app)
    prefix = f"longhaul-{target.settings.name}"
    platform = PlatformStack(app, f"{prefix}-platform", target=target)
    stacks: list[Stack] = [platform]
    service_stacks = [
        ServiceStack(
            app,
            f"{prefix}-{spec.name}",
            spec=spec,
            platform=platform,
            target=target,
            dockerfile=dockerfile,
        )
        for spec in services
    ]
    stacks += service_stacks
    stacks.append(
        ConsoleStack(
            app,
            f"{prefix}-console",
            platform=platform,
            target=target,
            services=services,
            buckets={s.spec.name: s.bucket for s in service_stacks if s.bucket is not None},
        )
    )
    Validations.of(app).add_plugins(
        AwsSolutionsChecks(app, write_suppressions_to_cloud_formation=True)
    )
    return stacks


def main() -> None:
    """Synthesize into the CDK CLI's output directory (`CDK_OUTDIR`), else cdk.out/."""
    app = cdk.App(context=CONTEXT)
    build(app)
    app.synth()


if __name__ == "__main__":
    main()
