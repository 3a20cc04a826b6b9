"""`longhaul dev --reload`'s decision: which changed paths restart which units (a service's
api and worker, or the console), and which restart nothing."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from pathlib import Path

import pytest
from watchfiles import Change

from longhaul.local.discovery import discover
from longhaul.local.reload import (
    CHILD_IMPORTED,
    CONSOLE,
    Reload,
    WatchRoots,
    describe,
    is_noise,
    plan,
    watch_roots,
)
from longhaul.local.reloader import changed_paths, collect_changes
from tests.support.echo.spec import SPEC as ECHO

REPO = Path("/repo")
KIT = REPO / "common/longhaul"
MEDIA = REPO / "services/media/longhaul_media"
TRAINING = REPO / "services/training/longhaul_training"
ECHO_PACKAGE = REPO / "tests/support/echo"
ROOTS = WatchRoots(
    kit=KIT,
    console=KIT / "console",
    emulator=KIT / "local/emulator",
    services={"echo": ECHO_PACKAGE, "media": MEDIA, "training": TRAINING},
)


def units(*changed: str) -> tuple[str, ...]:
    return plan([REPO / path for path in changed], ROOTS).units


def test_a_change_in_a_service_package_restarts_only_that_service() -> None:
    assert units("services/media/longhaul_media/api/routes.py") == ("media",)
    assert units("services/media/longhaul_media/presets.json") == ("media",)  # data it reads
    assert units("services/training/longhaul_training/worker/train.py") == ("training",)


def test_a_burst_of_saves_restarts_each_service_once() -> None:
    change = plan(
        [
            MEDIA / "spec.py",
            MEDIA / "api/routes.py",
            MEDIA / "worker/ladder.py",
            TRAINING / "config.py",
        ],
        ROOTS,
    )
    assert change.services == ("media", "training")
    assert not change.console
    assert change.because == (
        MEDIA / "api/routes.py",
        MEDIA / "spec.py",
        MEDIA / "worker/ladder.py",
        TRAINING / "config.py",
    )


def test_a_python_change_in_the_kit_restarts_every_service_and_the_console() -> None:
    assert units("common/longhaul/jobs/runtime.py") == ("echo", "media", "training", CONSOLE)
    # longhaul.local modules the console imports are kit code its processes run
    assert units("common/longhaul/local/platform.py") == ("echo", "media", "training", CONSOLE)


@pytest.mark.parametrize(
    "name", ["runner.py", "reload.py", "reloader.py", "cli.py", "jobs_cli.py", "compose.py"]
)
def test_a_change_to_the_runners_own_code_restarts_nothing_and_is_reported(name: str) -> None:
    change = plan([KIT / "local" / name], ROOTS)
    assert change.units == ()
    assert change.runner == (KIT / "local" / name,)
    assert change  # the runner says it keeps its old code: restart `make dev`


def test_the_runners_own_code_is_what_no_child_imports() -> None:
    """The console (with the module it imports lazily) and every service's roles import
    only CHILD_IMPORTED of longhaul.local, so a change to any other module of it cannot
    change what a child runs; the runner's modules are among those others."""
    packages = [spec.package for spec in [*discover(), ECHO]]
    code = (
        "import importlib, sys\n"
        "for name in sys.argv[1:]:\n"
        "    importlib.import_module(name)\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('longhaul.local'))))\n"
    )
    children = ["longhaul.console.__main__", "longhaul.local.token"]
    children += [f"{package}.service" for package in packages]
    done = subprocess.run(
        [sys.executable, "-c", code, *children], capture_output=True, text=True, check=True
    )
    imported = {
        "__init__.py" if name == "longhaul.local" else f"{name.rsplit('.', 1)[1]}.py"
        for name in done.stdout.split()
    }
    assert "platform.py" in imported  # the check sees what the console imports
    assert imported <= CHILD_IMPORTED
    assert not {"runner.py", "reload.py", "reloader.py", "cli.py"} & CHILD_IMPORTED


def test_the_console_restarts_alone_for_its_code_and_not_for_its_static_files() -> None:
    assert units("common/longhaul/console/app.py") == (CONSOLE,)
    assert units("common/longhaul/console/static/js/list.js") == ()  # served from disk
    assert units("common/longhaul/console/static/index.html") == ()


def test_an_emulator_change_restarts_nothing_and_is_reported() -> None:
    change = plan([KIT / "local/emulator/app.py"], ROOTS)
    assert change.units == ()
    assert change.emulator == (KIT / "local/emulator/app.py",)
    assert change  # the runner says moto keeps the code it started with


@pytest.mark.parametrize(
    "path",
    [
        "tests/e2e/test_dev_runner.py",
        "tests/unit/local/test_reload.py",
        "docs/local-platform.md",
        "README.md",
        "common/pyproject.toml",
        "common/longhaul/py.typed",
        "common/requirements-runtime.txt",
        "services/media/pyproject.toml",  # outside the package: a reinstall, not a reload
        "services/media/tests/test_api.py",
        "services/media/Dockerfile",
        "deploy/longhaul_deploy/app.py",
        "common/longhaul/jobs/__pycache__/runtime.cpython-311.pyc",
        "services/media/longhaul_media/__pycache__/spec.cpython-311.pyc",
        "services/media/longhaul_media/.spec.py.swp",
        "services/media/longhaul_media/spec.py~",
        "services/media/longhaul_media/#spec.py#",
        "services/media/longhaul_media/.#spec.py",
        "services/media/longhaul_media/4913",
        "common/longhaul/jobs/.runtime.py.swx",
    ],
)
def test_changes_outside_the_code_restart_nothing(path: str) -> None:
    change = plan([REPO / path], ROOTS)
    assert change == Reload()
    assert not change


def test_a_service_package_inside_tests_is_watched_as_a_service() -> None:
    # tests/ is ignored, except a service's package there (the echo test service).
    assert units("tests/support/echo/service.py") == ("echo",)
    assert units("tests/support/dev.py") == ()


def test_a_hidden_folder_above_the_repository_does_not_hide_its_changes() -> None:
    hidden = Path("/home/me/.work/repo/services/media/longhaul_media")
    roots = WatchRoots(KIT, KIT / "console", KIT / "local/emulator", {"media": hidden})
    assert plan([hidden / "spec.py"], roots).units == ("media",)
    assert is_noise(Path("api/__pycache__/x.py"))
    assert not is_noise(Path("api/routes.py"))


async def test_a_deleted_module_reaches_the_decision_as_a_change(tmp_path: Path) -> None:
    """The runner's watcher passes on watchfiles' Change.deleted like any change, so a
    deleted module restarts its service (`plan` has no notion of deletion: a path is a
    path)."""
    package = tmp_path / "longhaul_media"
    package.mkdir()
    module = package / "old_routes.py"
    module.write_text("ROUTES = []\n")
    assert changed_paths({(Change.deleted, str(module))}) == {module}
    changes: asyncio.Queue[set[Path]] = asyncio.Queue()
    stop = asyncio.Event()
    watcher = asyncio.create_task(collect_changes([tmp_path], changes, stop))
    try:
        while True:  # the watcher is ready once it sees a probe outside the package
            (tmp_path / "probe.txt").write_text("x")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changes.get(), 1)
                break
        module.unlink()
        seen: set[Path] = set()
        while module not in seen:
            seen |= await changes.get()
    finally:
        stop.set()
        await watcher
    roots = WatchRoots(KIT, KIT / "console", KIT / "local/emulator", {"media": package})
    assert plan(seen, roots).units == ("media",)  # the deletion alone restarts media


def test_the_watched_folders_are_the_kit_and_each_service_package() -> None:
    specs = [*discover(), ECHO]
    roots = watch_roots(specs)
    repo = Path(__file__).resolve().parents[3]
    assert roots.kit == repo / "common/longhaul"
    assert roots.services["echo"] == repo / "tests/support/echo"
    assert roots.services["media"] == repo / "services/media/longhaul_media"
    assert roots.folders()[0] == roots.kit
    assert set(roots.folders()[1:]) == set(roots.services.values())
    assert not any(folder.is_relative_to(repo / "docs") for folder in roots.folders())


def test_describe_names_a_few_paths_relative_to_the_repository() -> None:
    paths = [MEDIA / "a.py", MEDIA / "b.py", MEDIA / "c.py", MEDIA / "d.py", MEDIA / "e.py"]
    text = describe(paths, REPO)
    assert text == (
        "services/media/longhaul_media/a.py, services/media/longhaul_media/b.py, "
        "services/media/longhaul_media/c.py and 2 more"
    )
    assert describe([Path("/elsewhere/x.py")], REPO) == "/elsewhere/x.py"
