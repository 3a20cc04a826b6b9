"""`longhaul dev --reload`: which of the running processes a change of files restarts.

The decision is a pure function of the changed paths and the folders the platform runs
from (`WatchRoots`), so it is tested without a process (tests/unit/local/test_reload.py):

- a file in a service's package (code, or data it reads such as media's presets.json)
  restarts that service's api and worker;
- a `.py` file in the kit (common/longhaul) restarts every service and the console;
- a `.py` file of the dev runner itself (`RUNNER_OWN`: the modules of longhaul.local that
  no service and not the console imports, such as runner.py, reload.py, reloader.py and
  cli.py) restarts nothing: the runner keeps running the code it started with
  (`Reload.runner` says so, and the runner prints that `make dev` must be restarted);
- a `.py` file of the console (common/longhaul/console) restarts only the console; its
  static files are read from disk at each request, so they restart nothing;
- a file of the emulator restarts nothing: moto keeps running, with its state, the code
  it started with (`Reload.emulator` says so, and the runner prints it);
- anything else (tests/, docs/, non-`.py` files of the kit, caches, editors' swap and
  backup files) restarts nothing.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import longhaul
from longhaul.spec import ServiceSpec

__all__ = [
    "CHILD_IMPORTED",
    "CONSOLE",
    "Reload",
    "WatchRoots",
    "describe",
    "is_noise",
    "package_folder",
    "plan",
    "watch_roots",
]

CONSOLE = "console"  # the console's unit: its child is named so by the runner
_NOISE_SUFFIXES = (".pyc", ".pyo", ".swp", ".swx", ".swo", ".tmp", "~")
_NOISE_NAMES = {"4913", ".DS_Store"}  # vim's probe of a folder; macOS's
# The modules of longhaul.local (files directly in it) that the runner's children import:
# the console imports longhaul.local.platform and .token, and with them the package's
# __init__ and what it imports; no service imports longhaul.local at all (proven by
# tests/unit/local/test_reload.py). Every other `.py` file of longhaul.local, outside the
# emulator, is the dev runner's own: only the runner (and the `longhaul` commands) run it.
CHILD_IMPORTED = frozenset(
    {"__init__.py", "discovery.py", "platform.py", "provision.py", "token.py"}
)


@dataclass(frozen=True)
class WatchRoots:
    """The folders the platform's processes run code from (absolute, resolved)."""

    kit: Path
    console: Path
    emulator: Path
    services: Mapping[str, Path] = field(default_factory=dict)  # service name -> package

    def folders(self) -> list[Path]:
        """What to watch: the kit and each service's package not already inside it."""
        found = [self.kit]
        for root in self.services.values():
            if not any(root.is_relative_to(other) for other in found):
                found.append(root)
        return found


@dataclass(frozen=True)
class Reload:
    """What a set of changes restarts, and the changes that decided it."""

    services: tuple[str, ...] = ()  # sorted by name
    console: bool = False
    emulator: tuple[Path, ...] = ()  # emulator files that changed: moto keeps its code
    runner: tuple[Path, ...] = ()  # the runner's own files that changed: it keeps its code
    because: tuple[Path, ...] = ()  # the changes that restart something, sorted

    @property
    def units(self) -> tuple[str, ...]:
        """The runner's units to restart: service names, then the console's."""
        return (*self.services, *((CONSOLE,) if self.console else ()))

    def __bool__(self) -> bool:
        return bool(self.units or self.emulator or self.runner)


def is_noise(path: Path) -> bool:
    """A file no process reads as code or data: bytecode caches, hidden files and folders,
    editors' swap, backup and probe files (`path` relative to the folder watched)."""
    if any(part == "__pycache__" or part.startswith(".") for part in path.parts[:-1]):
        return True
    name = path.name
    return (
        name.startswith((".", "#", "flycheck_"))
        or name.endswith(_NOISE_SUFFIXES)
        or name in _NOISE_NAMES
    )


def _service_of(path: Path, services: Mapping[str, Path]) -> str | None:
    """The service whose package holds `path` (the deepest package, if they nest)."""
    holders = [(len(r.parts), name) for name, r in services.items() if path.is_relative_to(r)]
    return max(holders)[1] if holders else None


def _noise_below(path: Path, root: Path) -> bool:
    return is_noise(path.relative_to(root))


def _runner_own(path: Path, kit: Path) -> bool:
    """Whether `path`, a `.py` file of the kit outside the emulator, is the dev runner's
    own: in longhaul.local and imported by none of the runner's children."""
    local = kit / "local"
    if not path.is_relative_to(local):
        return False
    inside = path.relative_to(local)
    return len(inside.parts) > 1 or inside.name not in CHILD_IMPORTED


def plan(changed: Iterable[Path], roots: WatchRoots) -> Reload:
    """Which units the `changed` paths (absolute) restart, under the rules of the module."""
    services: set[str] = set()
    console = False
    emulator: list[Path] = []
    runner: list[Path] = []
    because: list[Path] = []
    for path in changed:
        python = path.suffix == ".py"
        owner = _service_of(path, roots.services)
        if owner is not None:
            if not _noise_below(path, roots.services[owner]):
                services.add(owner)
                because.append(path)
        elif not path.is_relative_to(roots.kit) or _noise_below(path, roots.kit) or not python:
            continue
        elif path.is_relative_to(roots.emulator):
            emulator.append(path)
        elif _runner_own(path, roots.kit):
            runner.append(path)
        elif path.is_relative_to(roots.console):
            console = True
            because.append(path)
        else:
            services.update(roots.services)
            console = True
            because.append(path)
    return Reload(
        tuple(sorted(services)),
        console,
        tuple(sorted(emulator)),
        tuple(sorted(runner)),
        tuple(sorted(because)),
    )


def describe(paths: Iterable[Path], base: Path, most: int = 3) -> str:
    """`a.py, b.py and 4 more`, each relative to `base` where it is below it."""
    shown = [str(p.relative_to(base)) if p.is_relative_to(base) else str(p) for p in paths]
    text = ", ".join(shown[:most])
    return f"{text} and {len(shown) - most} more" if len(shown) > most else text


def package_folder(package: str) -> Path | None:
    """Where `package` is imported from, or None where it is not a folder (a module)."""
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        return None
    return Path(next(iter(found.submodule_search_locations))).resolve()


def watch_roots(specs: list[ServiceSpec]) -> WatchRoots:
    """The roots of the kit this process imports and of each service's package."""
    kit = Path(longhaul.__file__).parent.resolve()
    services = {
        spec.name: folder for spec in specs if (folder := package_folder(spec.package)) is not None
    }
    return WatchRoots(kit, kit / "console", kit / "local" / "emulator", services)
