"""The service images, built and run where there is no Docker engine: buildah builds them
and podman runs them (`make images`, tests/images).

No registry of container images is reachable from the development machines, so the
Dockerfiles' Python base (python:3.11-slim-bookworm) cannot be pulled. The Dockerfiles name
it by the PYTHON_IMAGE build argument, and here it is a stand-in made from Debian bookworm's
own packages with mmdebstrap (from the machine's apt sources) and imported into podman's
storage. docs/local-platform.md "Images" says what the stand-in differs in.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from longhaul.local.compose import (
    BASE_IMAGE,
    EMULATOR_IMAGE,
    MOUNTED_CONTEXTS,
    PLATFORM_IMAGE,
    image_name,
    mounted_contexts,
)

__all__ = [
    "CACHE",
    "IGNORE_FILE",
    "TOOLS",
    "build",
    "podman_environment",
    "python_image",
    "service_tag",
    "standin",
]

CACHE = Path(".longhaul/images")
SUITE = "bookworm"  # Debian 12: its python3 is 3.11, as in the registry's image
PACKAGES = ("python3", "python3-venv", "ca-certificates", "netbase", "tzdata")
# The machine's own trust anchors, so that pip in the build trusts what the machine trusts
# (a TLS-inspecting proxy's certificate, where there is one).
EXTRA_CERTIFICATES = Path("/usr/local/share/ca-certificates")
# What the registry's image configures and the Dockerfiles rely on.
CONFIG = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["python3"]',
)
STANDIN = "localhost/longhaul-python-standin"
# What enters every build's context, for buildah as for Docker (docker-compose): the one
# ignore file, so the two build the same files.
IGNORE_FILE = ".dockerignore"
# The images docker-compose runs beside the services': the emulator (Dockerfile.emulator,
# FROM the base) and the platform tools (Dockerfile.base's `platform` stage), by tag.
TOOLS = {
    EMULATOR_IMAGE: ("Dockerfile.emulator", None),
    PLATFORM_IMAGE: ("Dockerfile.base", "platform"),
}
# This VM may not raise rlimits, and crun does not support its hybrid cgroups.
CONTAINERS_CONF = '[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\n'


def podman_environment(cache: Path = CACHE) -> dict[str, str]:
    """The environment podman and buildah run with here (CONTAINERS_CONF set)."""
    conf = cache / "containers.conf"
    if not conf.is_file() or conf.read_text() != CONTAINERS_CONF:
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(CONTAINERS_CONF)
    return {**os.environ, "CONTAINERS_CONF": str(conf.resolve())}


def standin(cache: Path = CACHE, *, quiet: bool = False) -> str:
    """The stand-in's tag; made (about 25 s) and imported only when its inputs changed."""
    certificates = sorted(EXTRA_CERTIFICATES.glob("*.crt"))
    hooks = []
    if certificates:
        copy = " ".join(str(c) for c in certificates)
        hooks += [f"copy-in {copy} {EXTRA_CERTIFICATES}", 'chroot "$1" update-ca-certificates']
    inputs = hashlib.sha256(repr((SUITE, PACKAGES, hooks, CONFIG)).encode())
    for certificate in certificates:
        inputs.update(certificate.read_bytes())
    key = inputs.hexdigest()[:16]
    tag = f"{STANDIN}:{key}"
    env = podman_environment(cache)
    if subprocess.run(["podman", "image", "exists", tag], env=env).returncode == 0:
        return tag
    tar = cache / f"python-standin-{key}.tar"
    if not tar.is_file():
        for old in cache.glob("python-standin-*.tar"):
            old.unlink()
        partial = cache / f"partial-{key}.tar"
        argv = ["mmdebstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}"]
        argv += [f"--customize-hook={hook}" for hook in hooks]
        _run([*argv, SUITE, str(partial)], env, quiet=quiet)
        partial.replace(tar)
    changes = [f"--change={line}" for line in CONFIG]
    _run(["podman", "import", *changes, str(tar), tag], env, quiet=quiet)
    return tag


def python_image(cache: Path = CACHE, *, quiet: bool = False) -> str:
    """The base the Dockerfiles build on: $PYTHON_IMAGE if set (an image podman has or can
    pull), else the stand-in."""
    return os.environ.get("PYTHON_IMAGE") or standin(cache, quiet=quiet)


def service_tag(name: str) -> str:
    """The local tag of service `name`'s image (the name docker-compose.yml gives it)."""
    return image_name(name)


def build_contexts(dockerfile: str) -> list[str]:
    """The named build contexts a Dockerfile mounts (`--mount=...,from=NAME`), as buildah's
    arguments: for training's `torch-wheels`, the folder of PyTorch's CPU wheel
    ($TORCH_WHEELS, the Makefile's default /opt/wheels)."""
    arguments = []
    for name in mounted_contexts(dockerfile):
        variable, default = MOUNTED_CONTEXTS[name]
        arguments.append(f"--build-context={name}={os.environ.get(variable, default)}")
    return arguments


def build(
    services: Sequence[str],
    root: Path = Path(),
    cache: Path = CACHE,
    *,
    quiet: bool = False,
    tools: bool = False,
) -> list[str]:
    """Build the base (as `longhaul-base`, the name the services' Dockerfiles start FROM),
    with `tools` the emulator's and the platform tools' images, and each service's image
    from the Dockerfiles in `root`; return the tags built after the base. Unchanged steps
    come from buildah's layer cache."""
    env = podman_environment(cache)
    base = python_image(cache, quiet=quiet)
    bud = ["buildah", "bud", "--isolation=chroot", "--layers", "--pull=false"]
    bud.append(f"--ignorefile={root / IGNORE_FILE}")
    python = f"--build-arg=PYTHON_IMAGE={base}"
    dockerfile = root / "Dockerfile.base"
    _run(
        [*bud, python, "-f", str(dockerfile), "--target=base", "-t", BASE_IMAGE, str(root)],
        env,
        quiet=quiet,
    )
    tags = []
    for tag, (path, target) in TOOLS.items() if tools else ():
        stage = [python, f"--target={target}"] if target else []
        _run([*bud, *stage, "-f", str(root / path), "-t", tag, str(root)], env, quiet=quiet)
        tags.append(tag)
    for name in services:
        dockerfile = root / "services" / name / "Dockerfile"
        contexts = build_contexts(dockerfile.read_text())
        _run(
            [*bud, *contexts, "-f", str(dockerfile), "-t", service_tag(name), str(root)],
            env,
            quiet=quiet,
        )
        tags.append(service_tag(name))
    return tags


def _run(argv: list[str], env: dict[str, str], *, quiet: bool) -> None:
    """Run a build step; when quiet, its output appears only if it fails."""
    done = subprocess.run(argv, env=env, capture_output=quiet, text=True)
    if done.returncode != 0:
        output = (done.stdout or "") + (done.stderr or "")
        raise RuntimeError(f"{argv[0]} {argv[1]} failed ({done.returncode}):\n{output[-6000:]}")


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m longhaul.local.images [SERVICE ...]`: build the base, the emulator's and
    the platform tools' images (docker-compose's) and the services' images (every service
    with a Dockerfile by default)."""
    parser = argparse.ArgumentParser(prog="python -m longhaul.local.images", description=__doc__)
    parser.add_argument("services", nargs="*", help="services/<name> to build (default: all)")
    args = parser.parse_args(argv)
    names = args.services or sorted(p.parent.name for p in Path("services").glob("*/Dockerfile"))
    try:
        tags = build(names, tools=True)
    except (RuntimeError, FileNotFoundError) as exc:
        raise SystemExit(f"images: {exc}") from None
    print("\n".join([BASE_IMAGE, *tags]))


if __name__ == "__main__":
    main()
