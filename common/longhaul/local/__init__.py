"""The local platform: discovery, provisioner, dev runner, compose file and CLI (tooling)."""

from longhaul.local.discovery import discover, load_spec
from longhaul.local.platform import LocalAuth, expected_auth, role_environment
from longhaul.local.provision import Provisioned, provision

__all__ = [
    "LocalAuth",
    "Provisioned",
    "discover",
    "expected_auth",
    "load_spec",
    "provision",
    "role_environment",
]
