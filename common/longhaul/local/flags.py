"""`longhaul flags get|set|unset`: a service's feature flags, on the local platform or on AWS.

The values live in the service's SSM parameter (longhaul.flags); the flags a service
declares, with their defaults, come from its `Service` object (`<package>.service:SERVICE`).
Developer and operator tooling: services never import it.
"""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any, TypeVar

import typer

from longhaul.aws.clients import AwsClients
from longhaul.flags import FlagValue, flags_parameter_name, parse_flag_value
from longhaul.local import platform
from longhaul.local.discovery import discover
from longhaul.local.errors import unreachable_in_one_line
from longhaul.spec import ServiceSpec

__all__ = ["declared_flags", "flags_app", "read_flags", "write_flags"]

T = TypeVar("T")

flags_app = typer.Typer(
    no_args_is_help=True,
    help="A service's feature flags: on the local platform (--env local, the default), or on "
    "AWS with --env dev|prod and the ordinary AWS credentials",
)

Service = Annotated[str, typer.Argument(help="The service")]
Env = Annotated[str, typer.Option(envvar="LONGHAUL_ENV", help="Environment name")]
Region = Annotated[str, typer.Option(envvar="AWS_REGION", help="AWS region")]
Endpoint = Annotated[
    str | None,
    typer.Option(help="A local AWS endpoint (default for --env local: make dev's)"),
]
Parameter = Annotated[
    str | None,
    typer.Option(help="The SSM parameter, when not /longhaul/<env>/<service>/flags"),
]


def declared_flags(spec: ServiceSpec) -> dict[str, FlagValue] | None:
    """The flags `spec`'s service declares, with their defaults; None when its `Service`
    object can not be found where services keep it."""
    from longhaul.runtime import Service as ServiceObject

    try:
        module = importlib.import_module(f"{spec.package}.service")
    except ModuleNotFoundError:
        return None
    service = getattr(module, "SERVICE", None)
    return dict(service.flags) if isinstance(service, ServiceObject) else None


async def read_flags(ssm: Any, parameter: str) -> dict[str, Any]:
    """The parameter's JSON object ({} when it does not exist)."""
    try:
        response = await ssm.get_parameter(Name=parameter)
    except ssm.exceptions.ParameterNotFound:
        return {}
    document = json.loads(response["Parameter"]["Value"] or "{}")
    if not isinstance(document, dict):
        raise typer.BadParameter(f"{parameter} does not hold a JSON object; fix it with set")
    return document


async def write_flags(ssm: Any, parameter: str, values: Mapping[str, Any]) -> None:
    """Replace the parameter's value with `values`."""
    await ssm.put_parameter(
        Name=parameter,
        Type="String",
        Value=json.dumps(dict(sorted(values.items()))),
        Overwrite=True,
    )


def _clients(env: str, endpoint: str | None, region: str) -> AwsClients:
    if endpoint or env == platform.DEFAULT_ENV:
        return platform.local_clients(endpoint or platform.DEFAULT_ENDPOINT, region)
    return AwsClients(region)  # the ordinary credential chain (and AWS_ENDPOINT_URL if set)


def _target(name: str, env: str, parameter: str | None) -> tuple[str, dict[str, FlagValue] | None]:
    specs = {spec.name: spec for spec in discover()}
    if name not in specs:
        raise typer.BadParameter(f"no service {name!r}; known: {', '.join(sorted(specs))}")
    return parameter or flags_parameter_name(env, name), declared_flags(specs[name])


def _run(env: str, endpoint: str | None, region: str, work: Callable[[Any], Awaitable[T]]) -> T:
    """`work(ssm)` with clients for `env`, closed after."""

    async def run() -> T:
        aws = _clients(env, endpoint, region)
        try:
            return await work(await aws.get("ssm"))
        finally:
            await aws.close()

    local = endpoint or env == platform.DEFAULT_ENV
    with unreachable_in_one_line(endpoint or platform.DEFAULT_ENDPOINT if local else None):
        return asyncio.run(run())


def _show(
    parameter: str, stored: Mapping[str, Any], declared: Mapping[str, FlagValue] | None
) -> None:
    """The values in force on stdout (JSON); on stderr, where they come from."""
    if declared is None:
        typer.echo(json.dumps(dict(stored), sort_keys=True))
        typer.echo(f"{parameter} (the service's declared flags are unknown here)", err=True)
        return
    effective = dict(declared)
    for name, value in stored.items():
        if name in declared and type(value) is type(declared[name]):
            effective[name] = value
    typer.echo(json.dumps(effective, sort_keys=True))
    for name in sorted(set(declared) | set(stored)):
        if name not in declared:
            note = "not a flag of the service: ignored"
        elif name not in stored:
            note = "default"
        elif type(stored[name]) is not type(declared[name]):
            note = f"set to {json.dumps(stored[name])}, the wrong type: ignored"
        else:
            note = "set"
        typer.echo(
            f"{parameter}: {name} = {json.dumps(effective.get(name, stored.get(name)))} ({note})",
            err=True,
        )


@flags_app.command("get")
def get(
    service: Service,
    env: Env = platform.DEFAULT_ENV,
    region: Region = platform.DEFAULT_REGION,
    endpoint: Endpoint = None,
    parameter: Parameter = None,
) -> None:
    """Print the flags in force (JSON); where each comes from on stderr."""
    name, declared = _target(service, env, parameter)
    stored = _run(env, endpoint, region, lambda ssm: read_flags(ssm, name))
    _show(name, stored, declared)


@flags_app.command("set")
def set_(
    service: Service,
    assignments: Annotated[list[str], typer.Argument(help="name=value (true/false or text)")],
    env: Env = platform.DEFAULT_ENV,
    region: Region = platform.DEFAULT_REGION,
    endpoint: Endpoint = None,
    parameter: Parameter = None,
) -> None:
    """Set flags (the service sees them within LONGHAUL_FLAGS_TTL_S, 30 s)."""
    name, declared = _target(service, env, parameter)
    changes: dict[str, FlagValue] = {}
    for assignment in assignments:
        flag, sep, text = assignment.partition("=")
        if not sep or not flag:
            raise typer.BadParameter(f"{assignment!r} is not name=value")
        value = parse_flag_value(text)
        if declared is not None:
            if flag not in declared:
                known = ", ".join(sorted(declared)) or "none"
                raise typer.BadParameter(f"{service} has no flag {flag!r}; its flags: {known}")
            if type(value) is not type(declared[flag]):
                wanted = "true or false" if isinstance(declared[flag], bool) else "text"
                raise typer.BadParameter(f"{flag} takes {wanted}, not {text!r}")
        changes[flag] = value

    async def work(ssm: Any) -> dict[str, Any]:
        stored = {**await read_flags(ssm, name), **changes}
        await write_flags(ssm, name, stored)
        return stored

    _show(name, _run(env, endpoint, region, work), declared)


@flags_app.command("unset")
def unset(
    service: Service,
    names: Annotated[list[str], typer.Argument(help="the flags to return to their defaults")],
    env: Env = platform.DEFAULT_ENV,
    region: Region = platform.DEFAULT_REGION,
    endpoint: Endpoint = None,
    parameter: Parameter = None,
) -> None:
    """Return flags to their defaults (remove them from the parameter)."""
    name, declared = _target(service, env, parameter)

    async def work(ssm: Any) -> dict[str, Any]:
        stored = {k: v for k, v in (await read_flags(ssm, name)).items() if k not in names}
        await write_flags(ssm, name, stored)
        return stored

    _show(name, _run(env, endpoint, region, work), declared)
