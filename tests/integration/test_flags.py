"""Feature flags on the local platform: the provisioner creates each service's parameter and
leaves a value set since alone; `longhaul flags` reads and writes it, refusing flags the
service does not declare; the kit reads it through the service's clients."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from typer.testing import CliRunner

from longhaul.aws.clients import AwsClients
from longhaul.flags import Flags, flags_parameter_name
from longhaul.local.cli import app
from longhaul.local.platform import LocalAuth, role_environment
from longhaul.local.provision import provision
from longhaul_media.spec import SPEC as MEDIA
from tests.conftest import REGION
from tests.support.moto import MotoServer

pytestmark = pytest.mark.integration


@pytest.fixture
async def env(aws: AwsClients) -> str:
    name = "f" + uuid.uuid4().hex[:8]
    await provision(aws, [MEDIA], env=name, region=REGION)
    return name


async def stored(aws: AwsClients, env: str) -> object:
    ssm = await aws.get("ssm")
    response = await ssm.get_parameter(Name=flags_parameter_name(env, "media"))
    return json.loads(response["Parameter"]["Value"])


async def test_provision_creates_the_parameter_once_and_keeps_what_was_set(
    aws: AwsClients, env: str
) -> None:
    assert await stored(aws, env) == {}
    ssm = await aws.get("ssm")
    name = flags_parameter_name(env, "media")
    await ssm.put_parameter(Name=name, Value='{"preset_quality": true}', Overwrite=True)
    again = await provision(aws, [MEDIA], env=env, region=REGION)
    assert ("parameter", name, "exists") in again.actions
    assert await stored(aws, env) == {"preset_quality": True}


def test_each_role_is_told_its_services_parameter() -> None:
    auth = LocalAuth(pool_id="p", client_id="c", region=REGION)
    for role in ("api", "worker"):
        variables = role_environment(
            MEDIA, role, env="local", region=REGION, endpoint="http://x", auth=auth, host="h"
        )
        assert variables["LONGHAUL_FLAGS_PARAMETER"] == "/longhaul/local/media/flags"


async def flags_cli(moto: MotoServer, env: str, *args: str) -> tuple[int, str, str]:
    """`longhaul flags ...` (on a thread: the command runs its own event loop)."""
    argv = ["flags", *args, "--env", env, "--endpoint", moto.endpoint]
    result = await asyncio.to_thread(CliRunner().invoke, app, argv, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


async def test_the_cli_sets_gets_and_unsets_a_declared_flag(
    aws: AwsClients, moto: MotoServer, env: str
) -> None:
    code, out, err = await flags_cli(moto, env, "get", "media")
    assert (code, json.loads(out)) == (0, {"preset_quality": False})
    assert "preset_quality = false (default)" in err
    code, out, err = await flags_cli(moto, env, "set", "media", "preset_quality=on")
    assert (code, json.loads(out)) == (0, {"preset_quality": True})
    assert await stored(aws, env) == {"preset_quality": True}
    assert "preset_quality = true (set)" in err
    code, out, _ = await flags_cli(moto, env, "unset", "media", "preset_quality")
    assert (code, json.loads(out)) == (0, {"preset_quality": False})
    assert await stored(aws, env) == {}


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("preset_qualty=true", "media has no flag 'preset_qualty'; its flags: preset_quality"),
        ("preset_quality=maybe", "preset_quality takes true or false, not 'maybe'"),
        ("preset_quality", "'preset_quality' is not name=value"),
    ],
)
async def test_the_cli_refuses_what_the_service_would_ignore(
    aws: AwsClients, moto: MotoServer, env: str, assignment: str, message: str
) -> None:
    code, _, err = await flags_cli(moto, env, "set", "media", assignment)
    assert code == 2
    assert message in " ".join(err.replace("│", " ").split())
    assert await stored(aws, env) == {}


async def test_the_kit_reads_the_parameter_through_the_services_clients(
    aws: AwsClients, env: str
) -> None:
    name = flags_parameter_name(env, "media")
    flags = Flags(aws, name, defaults={"preset_quality": False}, ttl_s=0)
    assert not await flags.enabled("preset_quality")
    ssm = await aws.get("ssm")
    await ssm.put_parameter(Name=name, Value='{"preset_quality": true}', Overwrite=True)
    assert await flags.enabled("preset_quality")
    await ssm.delete_parameter(Name=name)
    assert not await flags.enabled("preset_quality")
