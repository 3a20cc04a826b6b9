"""The service's image asset: its Dockerfile, built from the repository root at deploy time.

A service's Dockerfile starts `FROM longhaul-base`, the image Dockerfile.base builds. The CDK
CLI builds assets with the local Docker engine, where that name resolves to a local image,
so a deployment first builds the base (`docker build -f Dockerfile.base --target base -t
longhaul-base .`, see docs/deploy.md) and then lets `cdk deploy` build and push each service.
Synthesis only stages the context into cdk.out; it needs no Docker engine.

A Dockerfile that mounts a named build context (`--mount=type=bind,from=torch-wheels`:
training's PyTorch wheel) gets the same folder `make images` gives it
(`longhaul.local.images.build_contexts`: `$TORCH_WHEELS`, else /opt/wheels), read by the
CDK CLI when it builds the image.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import IgnoreMode
from aws_cdk import aws_ecr_assets as ecr_assets
from constructs import Construct

from longhaul.local.images import build_contexts

__all__ = ["BUILD_CONTEXT_EXCLUDE", "REPO_ROOT", "named_contexts", "service_image"]

REPO_ROOT = Path(__file__).resolve().parents[2]
# Only what the Dockerfiles copy enters the context (and the asset's hash): a change to the
# docs, the tests or deploy/ itself does not rebuild an image.
BUILD_CONTEXT_EXCLUDE = [
    "*",
    "!common",
    "!services",
    "!requirements-runtime.txt",
    "!Dockerfile.base",
    "**/__pycache__",
    "**/*.pyc",
    "**/*.egg-info",
    "**/.pytest_cache",
    "**/.mypy_cache",
    "**/.ruff_cache",
]


def service_image(
    scope: Construct, construct_id: str, *, dockerfile: str, name: str
) -> ecr_assets.DockerImageAsset:
    """The image asset of the Dockerfile at `dockerfile` (relative to the repository root)."""
    if not (REPO_ROOT / dockerfile).is_file():
        raise FileNotFoundError(f"no Dockerfile at {dockerfile} (relative to {REPO_ROOT})")
    contexts = named_contexts((REPO_ROOT / dockerfile).read_text())
    return ecr_assets.DockerImageAsset(
        scope,
        construct_id,
        directory=str(REPO_ROOT),
        file=dockerfile,
        exclude=BUILD_CONTEXT_EXCLUDE,
        ignore_mode=IgnoreMode.DOCKER,
        platform=ecr_assets.Platform.LINUX_AMD64,
        display_name=f"{name} image",
        build_contexts=contexts or None,
    )


def named_contexts(dockerfile: str) -> dict[str, str]:
    """The named build contexts `dockerfile` mounts, and the folder each one is."""
    found: dict[str, str] = {}
    for argument in build_contexts(dockerfile):
        name, _, folder = argument.removeprefix("--build-context=").partition("=")
        found[name] = folder
    return found
