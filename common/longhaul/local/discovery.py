"""Finding the platform's services: every installed package that declares an entry point in
the `longhaul.services` group (a new service under services/ is picked up by `make dev`'s
install step, with no change anywhere else)."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from longhaul.spec import ServiceSpec

__all__ = ["ENTRY_POINT_GROUP", "discover", "load_event_modules", "load_spec"]

ENTRY_POINT_GROUP = "longhaul.services"


def load_spec(reference: str) -> ServiceSpec:
    """The `ServiceSpec` at `module:ATTRIBUTE`."""
    module_name, _, attribute = reference.partition(":")
    spec = getattr(importlib.import_module(module_name), attribute or "SPEC")
    if not isinstance(spec, ServiceSpec):
        raise TypeError(f"{reference} is a {type(spec).__name__}, not a ServiceSpec")
    return spec


def discover(extra: tuple[str, ...] = ()) -> list[ServiceSpec]:
    """Every installed service's spec, plus the specs named in `extra`, sorted by name."""
    specs = [ep.load() for ep in entry_points(group=ENTRY_POINT_GROUP)]
    specs += [load_spec(reference) for reference in extra]
    by_name: dict[str, ServiceSpec] = {}
    ports: dict[int, str] = {}
    for spec in specs:
        if not isinstance(spec, ServiceSpec):
            raise TypeError(f"entry point in {ENTRY_POINT_GROUP} is not a ServiceSpec: {spec!r}")
        if spec.name in by_name:
            raise ValueError(f"two services are named {spec.name!r}")
        for port in (spec.port, spec.worker_port):
            if port in ports:
                raise ValueError(f"{spec.name} and {ports[port]} both use port {port}")
            ports[port] = spec.name
        by_name[spec.name] = spec
    return [by_name[name] for name in sorted(by_name)]


def load_event_modules(specs: list[ServiceSpec]) -> None:
    """Import each service's `events` module, so that its events are registered."""
    for spec in specs:
        try:
            importlib.import_module(f"{spec.package}.events")
        except ModuleNotFoundError as exc:
            if exc.name != f"{spec.package}.events":
                raise
