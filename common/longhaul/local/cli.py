"""`longhaul`: the local platform's command line (dev, provision, reset, token, schemas,
compose, dlq, flags, audit, smoke). Developer tooling: services never import it."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import httpx
import typer

from longhaul.aws.clients import AwsClients
from longhaul.events.registry import registered
from longhaul.events.schemas import drift, schema_documents, write_schemas
from longhaul.local import platform
from longhaul.local.discovery import discover, load_event_modules
from longhaul.local.errors import unreachable_in_one_line
from longhaul.local.flags import flags_app
from longhaul.local.jobs_cli import app as jobs_app
from longhaul.local.smoke import smoke_command, smoke_user_command
from longhaul.spec import ResourceNames, ServiceSpec

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
app.add_typer(flags_app, name="flags")
app.add_typer(jobs_app, name="jobs")
app.command("smoke")(smoke_command)
app.command("smoke-user")(smoke_user_command)

Endpoint = Annotated[
    str,
    typer.Option(envvar="AWS_ENDPOINT_URL", help="The local AWS endpoint (moto)"),
]
Env = Annotated[str, typer.Option(envvar="LONGHAUL_ENV", help="Environment name")]
Region = Annotated[str, typer.Option(envvar="AWS_REGION", help="AWS region")]
Extra = Annotated[
    list[str],
    typer.Option("--service", help="Also run the spec at module:ATTR (repeatable)"),
]

SCHEMA_DIR = Path("docs/events")
T = TypeVar("T")


def _with_aws(endpoint: str, region: str, work: Callable[[AwsClients], Awaitable[T]]) -> T:
    """Run `work` with clients pointed at the local `endpoint`, and close them after."""

    async def run() -> T:
        aws = platform.local_clients(endpoint, region)
        try:
            return await work(aws)
        finally:
            await aws.close()

    with unreachable_in_one_line(endpoint):
        return asyncio.run(run())


@app.command()
def dev(
    service: Extra = [],  # noqa: B006 - typer reads the default
    port: Annotated[int, typer.Option(help="moto's port")] = platform.MOTO_PORT,
    env: Env = platform.DEFAULT_ENV,
    region: Region = platform.DEFAULT_REGION,
    reload: Annotated[
        bool,
        typer.Option(
            "--reload",
            help="Restart only the services whose code changes (a change to the kit: all; "
            "to the dev runner's own code: none, it says to restart it); moto keeps "
            "running, with its state",
        ),
    ] = False,
    only: Annotated[
        list[str],
        typer.Option("--only", help="Run only this service (repeatable; default: every one)"),
    ] = [],  # noqa: B006
    console_port: Annotated[
        int | None, typer.Option(help="The web console's port (default 8100)")
    ] = None,
) -> None:
    """Run moto, provision it, and run every service's api and worker until Ctrl-C."""
    from longhaul.local.runner import CONSOLE_PORT, DevRunner

    specs = discover(tuple(service))
    unknown = sorted(set(only) - {spec.name for spec in specs})
    if unknown:
        known = ", ".join(spec.name for spec in specs)
        typer.echo(f"error: no service named {', '.join(unknown)} (there are: {known})", err=True)
        raise typer.Exit(2)
    if only:
        specs = [spec for spec in specs if spec.name in only]
    runner = DevRunner(
        specs,
        env=env,
        region=region,
        port=port,
        console_port=console_port or CONSOLE_PORT,
        reload=reload,
    )
    raise typer.Exit(asyncio.run(runner.run()))


@app.command("provision")
def provision_command(
    endpoint: Endpoint = platform.DEFAULT_ENDPOINT,
    env: Env = platform.DEFAULT_ENV,
    region: Region = platform.DEFAULT_REGION,
    service: Extra = [],  # noqa: B006
) -> None:
    """Create every declared resource on the local endpoint (running it twice changes nothing)."""
    from longhaul.local.provision import provision

    specs = discover(tuple(service))
    report = _with_aws(endpoint, region, lambda aws: provision(aws, specs, env=env, region=region))
    for kind, name, outcome in report.actions:
        typer.echo(f"{outcome:>8}  {kind:<10} {name}")


@app.command()
def reset(
    endpoint: Endpoint = platform.DEFAULT_ENDPOINT,
    env: Env = platform.DEFAULT_ENV,
    region: Region = platform.DEFAULT_REGION,
    service: Extra = [],  # noqa: B006
) -> None:
    """Wipe all state on the local endpoint, then provision again."""
    platform.assert_local(endpoint)
    with unreachable_in_one_line(endpoint):
        httpx.post(f"{endpoint.rstrip('/')}/moto-api/reset", timeout=10).raise_for_status()
    typer.echo(f"reset {endpoint}")
    provision_command(endpoint=endpoint, env=env, region=region, service=service)


@app.command()
def token(
    endpoint: Endpoint = platform.DEFAULT_ENDPOINT,
    env: Env = platform.DEFAULT_ENV,
    region: Region = platform.DEFAULT_REGION,
    user: Annotated[
        str, typer.Option(help="dev (a plain caller) or admin (dev-admin, in group admin)")
    ] = "dev",
) -> None:
    """Print an RS256 access token for a local dev user (`--user admin`: the dev admin)."""
    from longhaul.local.token import DEV_USERS, dev_token

    if user not in DEV_USERS:
        raise typer.BadParameter(f"one of {', '.join(DEV_USERS)}", param_hint="--user")
    username = DEV_USERS[user]
    typer.echo(_with_aws(endpoint, region, lambda aws: dev_token(aws, env, username=username)))


@app.command()
def schemas(
    check: Annotated[bool, typer.Option(help="Fail if the files differ from the code")] = False,
    directory: Annotated[Path, typer.Option(help="Where the schema files live")] = SCHEMA_DIR,
) -> None:
    """Write the JSON Schema of every registered event into docs/events/."""
    documents = schema_documents(platform_events(discover()))
    if check:
        stale = drift(directory, documents)
        if stale:
            typer.echo(f"out of date: {', '.join(stale)}; run `make schemas`", err=True)
            raise typer.Exit(1)
        return
    for name in write_schemas(directory, documents):
        typer.echo(f"wrote {directory / name}")


def platform_events(specs: list[ServiceSpec]) -> list[tuple[str, int, type]]:
    """The registered events of the installed services: those whose domain (the type's
    first part) is a service's name. A service's `events` module registers its own models
    and, when it runs jobs, its job facts (`register_job_facts`)."""
    load_event_modules(specs)
    names = {spec.name for spec in specs}
    return [e for e in registered() if e[0].split(".", 1)[0] in names]


@app.command()
def compose() -> None:
    """Print docker-compose.yml for the discovered services."""
    from longhaul.local.compose import render

    sys.stdout.write(render(discover()))


dlq = typer.Typer(
    no_args_is_help=True, help="A service's dead-letter queue (any endpoint, AWS too)"
)
app.add_typer(dlq, name="dlq")


Queue = Annotated[
    str | None,
    typer.Option(
        "--queue", help="The queue's name or URL, when not longhaul-<env>-<service> (AWS)"
    ),
]
Dlq = Annotated[str | None, typer.Option("--dlq", help="The DLQ's name or URL (AWS)")]
Table = Annotated[str | None, typer.Option("--table", help="The job table's name (AWS)")]
Bucket = Annotated[str | None, typer.Option("--bucket", help="The bucket's name (AWS)")]


def _dlq_names(name: str, env: str, extra: list[str], **given: str | None) -> ResourceNames:
    """The service's queue, DLQ, table and bucket: as the local platform names them, or as
    given (on AWS the stacks name them; their outputs print the names)."""
    specs = {spec.name: spec for spec in discover(tuple(extra))}
    if name not in specs:
        raise typer.BadParameter(
            f"no service {name!r}; known: {', '.join(sorted(specs)) or 'none'}"
        )
    names = ResourceNames.of(specs[name], env)
    overrides = {k: v.rstrip("/").rsplit("/", 1)[-1] for k, v in given.items() if v}
    names = names.model_copy(update=overrides)
    if names.queue is None or names.dlq is None:
        raise typer.BadParameter(f"service {name!r} declares no queue")
    return names


AwsFlag = Annotated[
    bool,
    typer.Option(
        "--aws",
        help="Use AWS through the ordinary credential chain (default: the local platform)",
    ),
]


def _with_service_aws(
    names: ResourceNames,
    region: str,
    work: Callable[[Any, str, str, AwsClients], Awaitable[T]],
    *,
    endpoint: str | None,
) -> T:
    """Run `work(sqs, queue_url, dlq_url, aws)` with clients of the local platform at
    `endpoint`, or, when it is None, from the ordinary credential chain (AWS)."""

    async def run() -> T:
        aws = AwsClients(region) if endpoint is None else platform.local_clients(endpoint, region)
        try:
            sqs = await aws.get("sqs")
            queue_url = (await sqs.get_queue_url(QueueName=names.queue))["QueueUrl"]
            dlq_url = (await sqs.get_queue_url(QueueName=names.dlq))["QueueUrl"]
            return await work(sqs, queue_url, dlq_url, aws)
        finally:
            await aws.close()

    with unreachable_in_one_line(endpoint):
        return asyncio.run(run())


@dlq.command("list")
def dlq_list(
    name: Annotated[str, typer.Argument(help="The service")],
    env: Env = platform.DEFAULT_ENV,
    region: Region = platform.DEFAULT_REGION,
    service: Extra = [],  # noqa: B006
    queue: Queue = None,
    dlq_name: Dlq = None,
    limit: Annotated[int, typer.Option(help="List at most this many messages")] = 1000,
    endpoint: Endpoint = platform.DEFAULT_ENDPOINT,
    aws: AwsFlag = False,
) -> None:
    """Print a sample of the DLQ's messages as JSON lines (they stay in the DLQ); on
    stderr, how many it holds."""
    from longhaul.jobs.dlq import Sample, describe, peek

    async def work(sqs: Any, queue_url: str, dlq_url: str, aws: AwsClients) -> Sample:
        return await peek(sqs, dlq_url, limit=limit)

    names = _dlq_names(name, env, service, queue=queue, dlq=dlq_name)
    sample = _with_service_aws(names, region, work, endpoint=None if aws else endpoint)
    for message in sample.messages:
        typer.echo(json.dumps(describe(message)))
    note = f"{len(sample.messages)} message(s) listed of about {sample.about} in the DLQ"
    if sample.limited:
        note += f" (stopped at --limit {limit})"
    elif len(sample.messages) < sample.about:
        note += (
            "; SQS hands out a sample per receive, so some were not listed (a redrive takes all)"
        )
    typer.echo(note, err=True)


@dlq.command("redrive")
def dlq_redrive(
    name: Annotated[str, typer.Argument(help="The service")],
    env: Env = platform.DEFAULT_ENV,
    region: Region = platform.DEFAULT_REGION,
    service: Extra = [],  # noqa: B006
    queue: Queue = None,
    dlq_name: Dlq = None,
    table: Table = None,
    bucket: Bucket = None,
    endpoint: Endpoint = platform.DEFAULT_ENDPOINT,
    aws: AwsFlag = False,
) -> None:
    """Retry what the DLQ holds: drain it into the work queue, resetting each failed job
    before its message moves. Progress on stderr; the counts on stdout."""
    from longhaul.jobs.dlq import Counts, Redrive, redrive
    from longhaul.jobs.store import JobStore

    names = _dlq_names(name, env, service, queue=queue, dlq=dlq_name, table=table, bucket=bucket)

    def progress(done: Redrive, left: Counts) -> None:
        typer.echo(f"{done.summary()}; about {left.visible + left.hidden} left", err=True)

    async def work(sqs: Any, queue_url: str, dlq_url: str, aws: AwsClients) -> Redrive:
        store = None
        if names.table:
            store = JobStore(
                await aws.get("dynamodb"), names.table, s3=await aws.get("s3"), bucket=names.bucket
            )
        return await redrive(sqs, dlq_url, queue_url, store, progress=progress)

    result = _with_service_aws(names, region, work, endpoint=None if aws else endpoint)
    typer.echo(result.summary())
    for job_id in result.kept:
        typer.echo(f"failed again, left in the DLQ: {job_id}")


@app.command()
def audit(
    python: Annotated[bool, typer.Option(help="Scan the images' Python pins")] = True,
    npm: Annotated[bool, typer.Option(help="Scan the CDK CLI's npm package")] = True,
    pins: Annotated[Path, typer.Option(help="The pins the images install")] = Path(
        "requirements-runtime.txt"
    ),
    cdk_cli: Annotated[Path, typer.Option(help="The folder of the CDK CLI's package.json")] = Path(
        "deploy/cli"
    ),
    allowlist: Annotated[Path, typer.Option(help="Accepted advisories")] = Path(
        "security/audit-allowlist.toml"
    ),
) -> None:
    """The dependency scan that gates deploys: any known Python vulnerability, or a critical
    npm one, that the allowlist does not accept fails it (docs/pipeline.md)."""
    from longhaul.local.audit import scan

    status = scan(
        pins=pins if python else None,
        cdk_cli=cdk_cli if npm else None,
        allowlist=allowlist,
        say=typer.echo,
    )
    raise typer.Exit(status)


@app.command()
def services() -> None:
    """List the discovered services as JSON."""
    typer.echo(json.dumps([s.model_dump(mode="json") for s in discover()], indent=2))


def main() -> None:
    """Console entry point."""
    app()


if __name__ == "__main__":
    main()
