"""The images run the ffmpeg the tests run: imageio-ffmpeg's build at the version the tests
have installed, no distribution ffmpeg, nothing that points media at another binary. Read
from the Dockerfiles, the pins, docker-compose.yml, the dev runner and the CDK app;
tests/images builds the images and runs them."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from longhaul.local import images
from longhaul_media.config import pinned_ffmpeg

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILES = [ROOT / "Dockerfile.base", *sorted((ROOT / "services").glob("*/Dockerfile"))]
OVERRIDES = ("MEDIA_FFMPEG_PATH", "IMAGEIO_FFMPEG_EXE")
# What the base Dockerfile ran before the pin: the check below must catch it.
DEBIAN_FFMPEG = """
RUN apt-get update \\
 && apt-get install -y --no-install-recommends ffmpeg \\
 && rm -rf /var/lib/apt/lists/*
ENV MEDIA_FFMPEG_PATH=/usr/bin/ffmpeg
"""


def instructions(text: str) -> list[tuple[str, str]]:
    """A Dockerfile's instructions as (keyword, arguments), continued lines joined."""
    found: list[tuple[str, str]] = []
    logical = ""
    for line in text.splitlines():
        if line.strip().startswith("#") or not (logical or line.strip()):
            continue
        if line.rstrip().endswith("\\"):
            logical += line.rstrip()[:-1] + " "
            continue
        keyword, _, arguments = (logical + line).strip().partition(" ")
        found.append((keyword.upper(), " ".join(arguments.split())))
        logical = ""
    return found


def commands(text: str) -> list[str]:
    """Each shell command of the Dockerfile's RUN steps."""
    steps = [arguments for keyword, arguments in instructions(text) if keyword == "RUN"]
    return [c.strip() for step in steps for c in re.split(r"&&|\|\||;", step)]


def installed_packages(text: str) -> set[str]:
    """The distribution packages the Dockerfile's RUN steps install (apt, apt-get, apk)."""
    packages: set[str] = set()
    for command in commands(text):
        match = re.search(r"\b(?:apt-get|apt|apk)\s+(?:-\S+\s+)*(?:install|add)\s(.*)", command)
        if match:
            packages |= {w.split("=")[0] for w in match.group(1).split() if w[0] != "-"}
    return packages


def ffmpeg_like(packages: set[str]) -> set[str]:
    """The packages that bring an ffmpeg binary or its libraries."""
    return {p for p in packages if "ffmpeg" in p or re.match(r"libav|libsw|libpostproc", p)}


def pin(requirements: Path, name: str) -> str:
    """The exact version `requirements` pins `name` to."""
    match = re.search(rf"^{re.escape(name)}==(\S+)", requirements.read_text(), re.M)
    assert match, f"{requirements.name} does not pin {name}"
    return match.group(1)


def test_the_checks_catch_a_distribution_ffmpeg_and_an_override() -> None:
    assert ffmpeg_like(installed_packages(DEBIAN_FFMPEG)) == {"ffmpeg"}
    assert ffmpeg_like({"libavcodec59", "python3", "ca-certificates"}) == {"libavcodec59"}
    assert any(o in DEBIAN_FFMPEG for o in OVERRIDES)


def test_no_image_installs_a_distribution_ffmpeg() -> None:
    assert len(DOCKERFILES) >= 2
    for dockerfile in DOCKERFILES:
        installed = installed_packages(dockerfile.read_text())
        assert not ffmpeg_like(installed), f"{dockerfile.relative_to(ROOT)} installs {installed}"


def test_nothing_points_media_at_another_ffmpeg() -> None:
    configured = [
        *DOCKERFILES,
        ROOT / "docker-compose.yml",
        *sorted((ROOT / "deploy/longhaul_deploy").rglob("*.py")),
        *sorted((ROOT / "common/longhaul/local").rglob("*.py")),
    ]
    for path in configured:
        text = path.read_text()
        for override in OVERRIDES:
            assert override not in text, f"{path.relative_to(ROOT)} sets {override}"


def test_the_images_install_the_runtime_pins_and_nothing_beside_them() -> None:
    base = instructions((ROOT / "Dockerfile.base").read_text())
    pins = "common/requirements-runtime.txt"
    assert ("COPY", f"{pins} /app/{pins}") in base
    assert ("RUN", f"pip install -r /app/{pins}") in base
    for dockerfile in DOCKERFILES[1:]:
        service = instructions(dockerfile.read_text())
        pins = f"services/{dockerfile.parent.name}/requirements-runtime.txt"
        assert ("COPY", f"{pins} /app/{pins}") in service, dockerfile
        assert ("RUN", f"pip install -r /app/{pins}") in service, dockerfile
    for dockerfile in DOCKERFILES:
        for command in commands(dockerfile.read_text()):
            if re.search(r"\bpip\s+install\b", command) and "-r /app/" not in command:
                # Anything else is the workspace's own packages (which bring no versions) or
                # PyTorch's CPU wheel, whose dependencies are in training's pins.
                assert "--no-deps" in command, f"{dockerfile.relative_to(ROOT)}: {command}"


def pins_of(requirements: Path) -> dict[str, str]:
    """Every `name==version` line of a pins file."""
    found = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", requirements.read_text(), re.M)
    return dict(found)


def test_each_images_pins_are_the_workspaces_pins() -> None:
    """An image installs the versions the tests run: each member's pins (the kit's in the
    base, a service's on top) agree with the workspace's, and each service image holds only
    what its own dependencies need (media's carries no training libraries)."""
    workspace = pins_of(ROOT / "requirements.txt")
    members = [ROOT / "common", *sorted(p.parent for p in (ROOT / "services").glob("*/Dockerfile"))]
    for member in members:
        pins = pins_of(member / "requirements-runtime.txt")
        assert pins, f"{member.name} has no pins: run make pins"
        for name, version in pins.items():
            assert workspace.get(name) == version, f"{member.name}: {name}=={version}"
    media = pins_of(ROOT / "services/media/requirements-runtime.txt")
    assert "imageio-ffmpeg" in media
    assert not {"lightgbm", "scikit-learn", "duckdb", "torch"} & set(media)


def test_the_image_pins_the_imageio_ffmpeg_the_tests_run() -> None:
    installed = metadata.version("imageio-ffmpeg")
    assert pin(ROOT / "services/media/requirements-runtime.txt", "imageio-ffmpeg") == installed
    assert pin(ROOT / "requirements.txt", "imageio-ffmpeg") == installed
    media = tomllib.loads((ROOT / "services/media/pyproject.toml").read_text())
    assert f"imageio-ffmpeg=={installed}" in media["project"]["dependencies"]
    # The binary the tests run is the one inside that distribution.
    files = metadata.files("imageio-ffmpeg") or []
    shipped = {Path(str(f.locate())).resolve() for f in files}
    assert Path(pinned_ffmpeg()).resolve() in shipped


def test_the_stand_in_base_is_the_default_bases_debian_release() -> None:
    text = (ROOT / "Dockerfile.base").read_text()
    default = re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim-(\w+)$", text, re.M)
    assert default, "Dockerfile.base names its Python base by ARG PYTHON_IMAGE"
    assert default.group(1) == images.SUITE
    assert {"python3", "python3-venv"} <= set(images.PACKAGES)


def test_training_builds_with_the_torch_wheel_folder_and_an_unknown_context_fails() -> None:
    training = (ROOT / "services/training/Dockerfile").read_text()
    contexts = images.build_contexts(training)
    assert len(contexts) == 1
    assert contexts[0].startswith("--build-context=torch-wheels=")
    assert images.build_contexts((ROOT / "services/media/Dockerfile").read_text()) == []
    with pytest.raises(RuntimeError, match="nobody provides"):
        images.build_contexts("RUN --mount=type=bind,from=elsewhere,target=/x true")
