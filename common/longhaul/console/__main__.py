"""`python -m longhaul.console [--host H] [--port N]`: the console, with its service map
from LONGHAUL_CONSOLE_SERVICES (JSON, name -> API base URL), the page's API base from
LONGHAUL_CONSOLE_API_BASE ("api/", its own forwarding, unless set), the S3 origins whose
presigned media URLs it fetches for the player from LONGHAUL_CONSOLE_MEDIA_ORIGINS
(comma-separated), the Cognito hosted UI and public app client the page signs in with from
LONGHAUL_CONSOLE_AUTH_URL and LONGHAUL_CONSOLE_CLIENT_ID (on AWS) and, only when the dev
runner sets LONGHAUL_CONSOLE_DEV_TOKEN=1, the dev users' token route (dev and dev-admin)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType

import uvicorn

from longhaul.console.app import (
    FORWARDING_BASE,
    ConsoleConfig,
    DevToken,
    create_app,
    services_from_env,
)
from longhaul.local import platform

DEFAULT_PORT = 8100


def local_dev_token(
    endpoint: str, region: str, env: str, username: str = platform.DEV_USER
) -> DevToken:
    """Fetch a local dev user's token from moto's Cognito, as `longhaul token` does."""
    from longhaul.local.token import dev_token

    async def fetch() -> str:
        aws = platform.local_clients(endpoint, region)
        try:
            return await dev_token(aws, env, username=username)
        except SystemExit as exc:  # "no local user pool": not this server's end
            raise RuntimeError(str(exc)) from None
        finally:
            await aws.close()

    return fetch


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the console until SIGTERM or Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m longhaul.console")
    parser.add_argument("--host", default=os.environ.get("LONGHAUL_HOST", "127.0.0.1"))
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("LONGHAUL_PORT", DEFAULT_PORT))
    )
    args = parser.parse_args(argv)
    try:
        services = services_from_env(os.environ.get("LONGHAUL_CONSOLE_SERVICES", ""))
    except ValueError as exc:
        print(f"console: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    dev = dev_admin = None
    if os.environ.get("LONGHAUL_CONSOLE_DEV_TOKEN") == "1":
        from longhaul.local.token import DEV_ADMIN_USER

        local = (
            platform.assert_local(os.environ.get("AWS_ENDPOINT_URL", platform.DEFAULT_ENDPOINT)),
            os.environ.get("AWS_REGION", platform.DEFAULT_REGION),
            os.environ.get("LONGHAUL_ENV", platform.DEFAULT_ENV),
        )
        dev = local_dev_token(*local)
        dev_admin = local_dev_token(*local, username=DEV_ADMIN_USER)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_cleanly)
    uvicorn.run(
        create_app(
            ConsoleConfig(
                services=services,
                dev_token=dev,
                dev_admin_token=dev_admin,
                api_base=os.environ.get("LONGHAUL_CONSOLE_API_BASE", FORWARDING_BASE),
                media_origins=tuple(
                    origin.strip().rstrip("/")
                    for origin in os.environ.get("LONGHAUL_CONSOLE_MEDIA_ORIGINS", "").split(",")
                    if origin.strip()
                ),
                auth_url=os.environ.get("LONGHAUL_CONSOLE_AUTH_URL") or None,
                client_id=os.environ.get("LONGHAUL_CONSOLE_CLIENT_ID") or None,
            )
        ),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,  # open event streams end with the console
    )


if __name__ == "__main__":
    main()
