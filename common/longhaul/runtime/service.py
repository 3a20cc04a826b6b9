"""A service: its spec, settings class, routes and event handlers, started in one role."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import uvicorn
from fastapi import APIRouter, FastAPI

from longhaul.api.app import create_app
from longhaul.config import KitSettings, Role, SettingsError, load_settings
from longhaul.events.consumer import EventRouter
from longhaul.flags import FlagValue
from longhaul.jobs.registry import JobTypes
from longhaul.observability.logging import configure_logging
from longhaul.observability.tracing import configure_telemetry
from longhaul.spec import ServiceSpec

__all__ = ["Service"]

ROLES: tuple[Role, ...] = ("api", "worker", "all")


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


@dataclass(frozen=True)
class Service:
    """Everything the kit needs to run one service in any role."""

    spec: ServiceSpec
    settings: type[KitSettings] = KitSettings
    routers: Sequence[APIRouter] = ()
    events: EventRouter | None = None
    jobs: JobTypes | None = None
    flags: Mapping[str, FlagValue] = field(default_factory=dict)  # declared flags, defaults

    def app(self, role: Role, settings: KitSettings | None = None) -> FastAPI:
        """The FastAPI app of `role`, with settings read from the environment by default."""
        settings = settings or load_settings(self.settings)
        settings.check_against(self.spec, role)
        return create_app(
            self.spec,
            settings,
            role=role,
            routers=self.routers,
            events=self.events,
            jobs=self.jobs,
            flags=self.flags,
        )

    def main(self, argv: Sequence[str] | None = None) -> None:
        """The entry point: `python -m longhaul_<name> --role api|worker|all [--port N]`."""
        parser = argparse.ArgumentParser(prog=f"python -m {self.spec.package}")
        parser.add_argument("--role", choices=ROLES, default="all")
        parser.add_argument("--port", type=int, default=None)
        args = parser.parse_args(argv)
        role: Role = args.role
        try:
            settings = load_settings(self.settings).check_against(self.spec, role)
        except SettingsError as exc:
            print(f"{self.spec.name}: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        configure_logging(self.spec.name, role, settings.log_level)
        configure_telemetry(self.spec.name, role, emf=settings.metrics_emf)
        default_port = self.spec.worker_port if role == "worker" else self.spec.port
        # uvicorn shuts down gracefully on SIGTERM/SIGINT and then re-raises the signal to
        # the handler that was there before it; make that handler end the process with 0,
        # because a graceful stop (a deploy, Spot's notice, scale-in) is not a failure.
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, _exit_cleanly)
        uvicorn.run(
            self.app(role, settings),
            host=settings.host,
            port=args.port or settings.port or default_port,
            loop="uvloop",
            http="httptools",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=30,
        )
