"""Specs that exercise what the media service does not declare: secrets, platform-bus rules,
a TTL, a third index, and a service with nothing but an API."""

from longhaul.spec import ComputeSpec, ScalingSpec, ServiceSpec
from tests.support.echo.spec import SPEC as ECHO

__all__ = ["API_ONLY", "ECHO", "FIXTURE_SPECS"]

API_ONLY = ServiceSpec(
    name="plain",
    package="tests.unit.deploy",
    port=18300,
    api=ComputeSpec(cpu=256, memory_mib=512),
    scaling=ScalingSpec(api_min=1, api_max=2),
)

FIXTURE_SPECS = (ECHO, API_ONLY)
