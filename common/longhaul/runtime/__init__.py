"""Roles: one entry point starts a service as `api`, `worker` or `all`."""

from longhaul.runtime.service import ROLES, Service

__all__ = ["ROLES", "Service"]
