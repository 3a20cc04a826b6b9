"""How the local tools say that the platform is not there: one line, status 3."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import typer

__all__ = ["UNREACHABLE", "unreachable_in_one_line"]

UNREACHABLE = 3


@contextlib.contextmanager
def unreachable_in_one_line(endpoint: str | None) -> Iterator[None]:
    """An endpoint that does not answer (the local platform is not running) or missing AWS
    credentials end the command with one line and status 3, never a traceback."""
    from botocore.exceptions import EndpointConnectionError, NoCredentialsError

    if endpoint is not None and not _listening(endpoint):
        _not_running(endpoint)  # at once, rather than after the AWS clients' retries
    try:
        yield
    except (EndpointConnectionError, httpx.ConnectError):
        if endpoint is None:
            typer.echo("longhaul: AWS does not answer (check the region and network)", err=True)
            raise typer.Exit(UNREACHABLE) from None
        _not_running(endpoint)
    except NoCredentialsError:
        typer.echo("longhaul: no AWS credentials found (locally, leave out --aws)", err=True)
        raise typer.Exit(UNREACHABLE) from None


def _listening(endpoint: str, timeout_s: float = 2.0) -> bool:
    """Whether something accepts connections at the endpoint's host and port."""
    parts = urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _not_running(endpoint: str) -> None:
    typer.echo(
        f"longhaul: nothing answers at {endpoint}: the local platform is not running; "
        "start it with `make dev`",
        err=True,
    )
    raise typer.Exit(UNREACHABLE) from None
