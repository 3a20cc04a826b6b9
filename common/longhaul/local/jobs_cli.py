"""`longhaul jobs`: list, read, watch, cancel, submit and read the logs of jobs, on the
local platform by default (the dev user's token fetched for you) or on AWS with `--api`
(the ALB's base URL; each service is under /<service>) and `--token`.

Every command takes `--json` for scripts. When the platform does not answer, one line says
so and the exit status is 3; an API error prints its problem+json title and detail (4);
`watch` and `submit --watch` exit with the job's outcome: 0 succeeded, 1 failed, 2
cancelled."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
from rich.table import Column, Table

from longhaul.local import platform
from longhaul.local.discovery import discover
from longhaul.local.jobs_api import (
    OUTCOME,
    Api,
    ApiError,
    Unreachable,
    cloudwatch_lines,
    job_log_lines,
    stack_log_group,
)
from longhaul.local.runner import LOG_DIR

__all__ = ["app"]

UNREACHABLE = 3
API_ERROR = 4

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
out = Console()
err = Console(stderr=True, soft_wrap=True)

ApiOpt = Annotated[
    str | None,
    typer.Option("--api", envvar="LONGHAUL_API", help="AWS: the ALB's base URL (https://...)"),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(envvar="LONGHAUL_TOKEN", help="a bearer token (default: the local dev user's)"),
]
ServiceOpt = Annotated[
    list[str] | None, typer.Option("--service", "-s", help="only these services (repeatable)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]
EndpointOpt = Annotated[str, typer.Option(help="the local AWS endpoint (for the dev token)")]


def _fail(message: str, code: int) -> NoReturn:
    err.print(f"longhaul: {message}", markup=False, highlight=False)
    raise typer.Exit(code)


_extra_specs: list[str] = []


@app.callback()
def _options(
    spec: Annotated[
        list[str],
        typer.Option(help="also the service whose spec is at module:ATTR, as `dev --service`"),
    ] = [],  # noqa: B006 - typer reads the default
) -> None:
    _extra_specs[:] = spec


def _api(api: str | None, token: str | None, endpoint: str) -> Api:
    try:
        return Api.of(discover(tuple(_extra_specs)), api=api, token=token, endpoint=endpoint)
    except Unreachable as exc:
        _fail(str(exc), UNREACHABLE)


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except Unreachable as exc:
        _fail(str(exc), UNREACHABLE)
    except ApiError as exc:
        _fail(str(exc), API_ERROR)


def _when(value: str | None) -> str:
    if not value:
        return ""
    return datetime.fromisoformat(value).astimezone().strftime("%m-%d %H:%M:%S")


@app.command("list")
def list_jobs(
    state: Annotated[str | None, typer.Option(help="queued, running, succeeded, ...")] = None,
    job_type: Annotated[str | None, typer.Option("--type", help="only jobs of this type")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="at most this many")] = 20,
    service: ServiceOpt = None,
    as_json: JsonOpt = False,
    api: ApiOpt = None,
    token: TokenOpt = None,
    endpoint: EndpointOpt = platform.DEFAULT_ENDPOINT,
) -> None:
    """The caller's jobs of every service, newest first."""
    client = _api(api, token, endpoint)
    found: list[dict[str, Any]] = []
    down: list[str] = []
    for name in service or list(client.services):
        if name not in client.services:
            _fail(f"no service {name!r} runs jobs (known: {', '.join(client.services)})", 2)
        try:
            taken = 0
            for job in client.jobs(name, state=state, limit=limit):
                if job_type and job["type"] != job_type:
                    continue
                found.append({"service": name, **job})
                taken += 1
                if taken >= limit:
                    break
        except Unreachable:
            down.append(name)
        except ApiError as exc:
            _fail(f"{name}: {exc}", API_ERROR)
    if down and len(down) == len(service or client.services):
        _fail(f"no service answers ({', '.join(down)}): is the platform up?", UNREACHABLE)
    found.sort(key=lambda j: j["created_at"], reverse=True)
    found = found[:limit]
    if as_json:
        print(json.dumps(found, indent=2))
        return
    table = Table("service", "type", "state", "progress", "created", "message")
    table.columns.insert(1, Column("id", no_wrap=True, min_width=32))  # whole, to copy
    for job in found:
        table.add_row(
            job["service"],
            job["id"],
            job["type"],
            job["state"],
            f"{job['progress'] * 100:.0f}%",
            _when(job["created_at"]),
            job.get("message") or "",
        )
    out.print(table)
    for name in down:
        err.print(f"longhaul: {name} does not answer; its jobs are not listed")


@app.command()
def get(
    job_id: str,
    service: ServiceOpt = None,
    as_json: JsonOpt = False,
    api: ApiOpt = None,
    token: TokenOpt = None,
    endpoint: EndpointOpt = platform.DEFAULT_ENDPOINT,
) -> None:
    """One job: its state, progress, payload, result or error."""
    client = _api(api, token, endpoint)
    name, job = _call(client.find, job_id, service)
    if as_json:
        print(json.dumps({"service": name, **job}, indent=2))
        return
    _show(name, job)


def _show(service: str, job: dict[str, Any]) -> None:
    table = Table.grid(padding=(0, 2))
    for key, value in [
        ("id", job["id"]),
        ("service", service),
        ("type", job["type"]),
        ("state", job["state"]),
        ("progress", f"{job['progress'] * 100:.0f}%"),
        ("message", job.get("message") or ""),
        ("created", _when(job.get("created_at"))),
        ("started", _when(job.get("started_at"))),
        ("finished", _when(job.get("finished_at"))),
        ("runs", str(job.get("runs", 0))),
        ("attempts", str(job.get("attempts", 0))),
        ("payload", json.dumps(job.get("payload"))),
        ("result", json.dumps(job["result"]) if job.get("result") is not None else ""),
        ("error", job.get("error") or ""),
    ]:
        if value:
            table.add_row(f"[bold]{key}[/]", str(value))
    out.print(table)


@app.command()
def watch(
    job_id: str,
    service: ServiceOpt = None,
    as_json: JsonOpt = False,
    api: ApiOpt = None,
    token: TokenOpt = None,
    endpoint: EndpointOpt = platform.DEFAULT_ENDPOINT,
) -> None:
    """Follow a job's progress live (its SSE stream) until it ends; exit with its outcome."""
    client = _api(api, token, endpoint)
    name, job = _call(client.find, job_id, service)
    raise typer.Exit(_follow(client, name, job, as_json))


def _follow(client: Api, service: str, job: dict[str, Any], as_json: bool) -> int:
    """Print the job's events as they come; its exit status."""
    state = job["state"]
    if state in OUTCOME:
        events: Iterator[dict[str, Any]] = iter([{"kind": "state", **job}])
    else:
        events = client.events(service, job["id"])
    try:
        if as_json:
            for event in events:
                print(json.dumps(event), flush=True)
                state = event.get("state", state)
        else:
            state = _progress_bar(job, events)
    except Unreachable as exc:
        _fail(str(exc), UNREACHABLE)
    except ApiError as exc:
        _fail(str(exc), API_ERROR)
    final = client.request(service, "GET", f"/jobs/{job['id']}")
    if not as_json:
        if final.get("error"):
            err.print(f"[red]error:[/] {final['error']}", highlight=False)
        elif final.get("result") is not None:
            out.print_json(json.dumps(final["result"]))
    return OUTCOME.get(final["state"], OUTCOME.get(state, 1))


def _progress_bar(job: dict[str, Any], events: Iterator[dict[str, Any]]) -> str:
    state = str(job["state"])
    message = job.get("message") or ""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[state]}"),
        console=out,
        transient=False,
    ) as bar:
        task = bar.add_task(job["type"], total=1.0, completed=job["progress"], state=state)
        for event in events:
            state = str(event.get("state", state))
            bar.update(task, completed=float(event.get("progress", 0.0)), state=state)
            if event.get("message") and event["message"] != message:
                message = event["message"]
                bar.console.print(f"  {message}", markup=False, highlight=False)
    return state


@app.command()
def cancel(
    job_id: str,
    service: ServiceOpt = None,
    as_json: JsonOpt = False,
    api: ApiOpt = None,
    token: TokenOpt = None,
    endpoint: EndpointOpt = platform.DEFAULT_ENDPOINT,
) -> None:
    """Cancel a job: a queued or parked one ends now, a running one is asked to stop."""
    client = _api(api, token, endpoint)
    name, _ = _call(client.find, job_id, service)
    job = _call(client.request, name, "POST", f"/jobs/{job_id}/cancel")
    if as_json:
        print(json.dumps({"service": name, **job}, indent=2))
    elif job["state"] == "cancelled":
        out.print(f"{job_id} cancelled")
    else:
        out.print(f"{job_id} asked to stop (now {job['state']}); `longhaul jobs watch {job_id}`")


@app.command()
def submit(
    service_name: Annotated[str, typer.Argument(metavar="SERVICE")],
    job_type: Annotated[str, typer.Argument(metavar="TYPE")],
    payload_file: Annotated[
        Path | None, typer.Option("--payload", "-p", help="a JSON file of the payload ('-': stdin)")
    ] = None,
    sets: Annotated[
        list[str] | None,
        typer.Option("--set", help="a payload field, key=value (value read as JSON if it parses)"),
    ] = None,
    key: Annotated[
        str | None, typer.Option(help="an Idempotency-Key: a retry gets the same job")
    ] = None,
    follow: Annotated[bool, typer.Option("--watch", help="then follow it to its end")] = False,
    as_json: JsonOpt = False,
    api: ApiOpt = None,
    token: TokenOpt = None,
    endpoint: EndpointOpt = platform.DEFAULT_ENDPOINT,
) -> None:
    """Submit a job of TYPE to SERVICE, its payload from a file and/or --set fields."""
    payload: dict[str, Any] = {}
    if payload_file is not None:
        text = sys.stdin.read() if str(payload_file) == "-" else payload_file.read_text()
        try:
            loaded = json.loads(text)
        except ValueError as exc:
            _fail(f"{payload_file} is not JSON: {exc}", 2)
        if not isinstance(loaded, dict):
            _fail(f"{payload_file} must hold a JSON object", 2)
        payload.update(loaded)
    for item in sets or []:
        field, sep, raw = item.partition("=")
        if not sep or not field:
            _fail(f"--set {item!r}: expected key=value", 2)
        try:
            payload[field] = json.loads(raw)
        except ValueError:
            payload[field] = raw
    client = _api(api, token, endpoint)
    if service_name not in client.services:
        _fail(f"no service {service_name!r} runs jobs (known: {', '.join(client.services)})", 2)
    headers = {"Idempotency-Key": key} if key else {}
    job = _call(
        client.request,
        service_name,
        "POST",
        "/jobs",
        json={"type": job_type, "payload": payload},
        headers=headers,
    )
    if as_json and not follow:
        print(json.dumps({"service": service_name, **job}, indent=2))
    elif not as_json:
        out.print(f"submitted {job['id']} ({job['type']}, {job['state']})")
    if follow:
        raise typer.Exit(_follow(client, service_name, job, as_json))


@app.command()
def logs(
    job_id: str,
    service: ServiceOpt = None,
    as_json: JsonOpt = False,
    api: ApiOpt = None,
    token: TokenOpt = None,
    endpoint: EndpointOpt = platform.DEFAULT_ENDPOINT,
    log_dir: Annotated[Path, typer.Option(help="local: the dev runner's logs")] = LOG_DIR,
    log_group: Annotated[
        str | None,
        typer.Option(
            help="AWS: the service's log group (default: the one of stack longhaul-<env>-<service>)"
        ),
    ] = None,
    env: Annotated[str, typer.Option(help="AWS: the environment")] = "dev",
) -> None:
    """The log lines of one job: locally from the dev runner's logs, on AWS from CloudWatch
    Logs (lines that carry the job's id)."""
    client = _api(api, token, endpoint)
    name, _ = _call(client.find, job_id, service)  # the caller's job, or 404
    if api:
        group = log_group or _call(stack_log_group, f"longhaul-{env}-{name}")
        lines = list(_call(lambda: list(cloudwatch_lines(group, job_id))))
    else:
        lines = list(job_log_lines(log_dir, name, job_id))
    for line in lines:
        if as_json:
            print(json.dumps(line))
        else:
            print(
                f"{line.get('time', ''):<30} {line.get('level', ''):<7} "
                f"{line.get('role', ''):<7} {line.get('message', '')}"
            )
    if not lines and not as_json:
        err.print(f"longhaul: no log lines carry job {job_id}")
