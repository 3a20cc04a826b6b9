"""How the local tools say that the platform is not there: one line, status 3."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx
import typer

__all__ = ["UNREACHABLE", "unreachable_in_one_line"]

UNREACHABLE = 3


@contextlib.contextmanager
def unreachable_in_one_line(endpoint: str | None) -> Iterator[None]:
    """An endpoint that does not answer (the local platform is not running) or missing AWS
    credentials end the command with one line and status 3, never a traceback."""
    from botocore.exceptions import EndpointConnectionError, NoCredentialsError

    try:
        yield
    except (EndpointConnectionError, httpx.ConnectError):
        if endpoint is None:
            typer.echo("longhaul: AWS does not answer (check the region and network)", err=True)
        else:
            typer.echo(
                f"longhaul: nothing answers at {endpoint}: the local platform is not running; "
                "start it with `make dev`",
                err=True,
            )
        raise typer.Exit(UNREACHABLE) from None
    except NoCredentialsError:
        typer.echo("longhaul: no AWS credentials found (locally, leave out --aws)", err=True)
        raise typer.Exit(UNREACHABLE) from None
