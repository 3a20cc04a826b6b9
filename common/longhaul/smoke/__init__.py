"""The smoke test run after every deployment, and against `make dev`: each service's health
through the public path, an authenticated round trip as a dedicated smoke user, and each
service's own check (`<package>.smoke`), which sends an event through the platform's buses.

`longhaul smoke` (longhaul.local.cli) is the command; docs/pipeline.md has the how and why.
"""

from longhaul.smoke.auth import SmokeUser, enroll_totp, smoke_user_token, totp
from longhaul.smoke.runner import Target, run_smoke
from longhaul.smoke.types import SmokeContext, SmokeFailed

__all__ = [
    "SmokeContext",
    "SmokeFailed",
    "SmokeUser",
    "Target",
    "enroll_totp",
    "run_smoke",
    "smoke_user_token",
    "totp",
]
