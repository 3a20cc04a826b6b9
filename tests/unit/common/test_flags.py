"""Feature flags: declared defaults, overridden by the parameter, cached, and never a crash
(a missing parameter, a bad value, an AWS error or a slow read leave the service running on
the last good values)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from botocore.exceptions import ClientError

from longhaul.flags import Flags, FlagValue, UnknownFlag, flags_parameter_name, parse_flag_value
from tests.conftest import LogCapture

PARAMETER = "/longhaul/test/media/flags"
DEFAULTS: dict[str, FlagValue] = {"preset_quality": False, "ladder": "classic"}


class FakeSsm:
    """GetParameter answering from `value` (None: ParameterNotFound) or raising `error`."""

    def __init__(self, value: str | None = None) -> None:
        self.value = value
        self.error: Exception | None = None
        self.delay_s = 0.0
        self.reads = 0

    async def get_parameter(self, Name: str) -> dict[str, Any]:
        self.reads += 1
        await asyncio.sleep(self.delay_s)
        if self.error is not None:
            raise self.error
        if self.value is None:
            raise ClientError(
                {"Error": {"Code": "ParameterNotFound", "Message": "no"}}, "GetParameter"
            )
        return {"Parameter": {"Name": Name, "Value": self.value}}


class FakeAws:
    def __init__(self, ssm: FakeSsm) -> None:
        self.ssm = ssm

    async def get(self, service: str) -> FakeSsm:
        assert service == "ssm"
        return self.ssm


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def flags_of(ssm: FakeSsm, clock: Clock | None = None, **kwargs: Any) -> Flags:
    return Flags(
        FakeAws(ssm), PARAMETER, defaults=DEFAULTS, ttl_s=30, clock=clock or Clock(), **kwargs
    )


async def test_a_missing_parameter_means_the_defaults() -> None:
    flags = flags_of(FakeSsm(None))
    assert await flags.values() == DEFAULTS
    assert await flags.enabled("preset_quality") is False


async def test_the_parameter_overrides_declared_flags() -> None:
    flags = flags_of(FakeSsm('{"preset_quality": true, "ladder": "wide"}'))
    assert await flags.enabled("preset_quality") is True
    assert await flags.value("ladder") == "wide"


async def test_reading_an_undeclared_flag_is_a_programming_error() -> None:
    flags = flags_of(FakeSsm("{}"))
    with pytest.raises(UnknownFlag):
        await flags.enabled("preset_qualty")


async def test_values_are_cached_for_the_ttl_then_read_again() -> None:
    ssm, clock = FakeSsm('{"preset_quality": true}'), Clock()
    flags = flags_of(ssm, clock)
    for _ in range(5):
        assert await flags.enabled("preset_quality")
    assert ssm.reads == 1
    ssm.value = '{"preset_quality": false}'
    clock.now += 29
    assert await flags.enabled("preset_quality")  # still the cached value
    clock.now += 2
    assert not await flags.enabled("preset_quality")
    assert ssm.reads == 2


async def test_without_a_parameter_nothing_is_read() -> None:
    ssm = FakeSsm('{"preset_quality": true}')
    flags = Flags(FakeAws(ssm), None, defaults=DEFAULTS)
    assert await flags.values() == DEFAULTS
    assert ssm.reads == 0


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '"on"', "true"])
async def test_a_parameter_that_is_not_an_object_is_logged_and_the_last_values_stay(
    text: str, json_logs: LogCapture
) -> None:
    ssm, clock = FakeSsm('{"preset_quality": true}'), Clock()
    flags = flags_of(ssm, clock)
    assert await flags.enabled("preset_quality")
    ssm.value = text
    for _ in range(3):  # read three times, logged once
        clock.now += 31
        assert await flags.enabled("preset_quality")
    warnings = [
        r for r in json_logs.records if str(r["message"]).startswith("flags parameter ignored")
    ]
    assert len(warnings) == 1, json_logs.text
    assert warnings[0]["level"] == "WARNING"


async def test_a_bad_first_value_leaves_the_defaults(json_logs: LogCapture) -> None:
    flags = flags_of(FakeSsm("{oops"))
    assert await flags.values() == DEFAULTS
    assert "flags parameter ignored: not JSON" in json_logs.text


async def test_wrong_types_and_undeclared_names_are_ignored_one_by_one(
    json_logs: LogCapture,
) -> None:
    ssm = FakeSsm('{"preset_quality": "yes", "ladder": "wide", "turbo": true}')
    flags = flags_of(ssm)
    assert await flags.values() == {"preset_quality": False, "ladder": "wide"}
    assert "'preset_quality' must be true or false, not \\\"yes\\\"" in json_logs.text
    assert "'turbo' is not a flag of this service" in json_logs.text


async def test_an_aws_error_keeps_the_last_values_and_is_retried_after_the_ttl(
    json_logs: LogCapture,
) -> None:
    ssm, clock = FakeSsm('{"preset_quality": true}'), Clock()
    flags = flags_of(ssm, clock)
    assert await flags.enabled("preset_quality")
    ssm.error = ClientError({"Error": {"Code": "ThrottlingException"}}, "GetParameter")
    clock.now += 31
    assert await flags.enabled("preset_quality")
    assert await flags.enabled("preset_quality")
    assert ssm.reads == 2  # not once per call while SSM refuses
    assert "ThrottlingException" in json_logs.text
    ssm.error = None
    ssm.value = "{}"
    clock.now += 31
    assert not await flags.enabled("preset_quality")


async def test_a_slow_read_gives_up_quickly_and_keeps_the_defaults() -> None:
    ssm = FakeSsm('{"preset_quality": true}')
    ssm.delay_s = 5
    flags = flags_of(ssm, read_timeout_s=0.05)
    started = asyncio.get_running_loop().time()
    assert not await flags.enabled("preset_quality")
    assert asyncio.get_running_loop().time() - started < 1


async def test_concurrent_callers_share_one_read() -> None:
    ssm = FakeSsm('{"preset_quality": true}')
    ssm.delay_s = 0.05
    flags = flags_of(ssm)
    results = await asyncio.gather(*(flags.enabled("preset_quality") for _ in range(20)))
    assert results == [True] * 20
    assert ssm.reads == 1


def test_the_parameter_is_named_per_environment_and_service() -> None:
    assert flags_parameter_name("prod", "media") == "/longhaul/prod/media/flags"


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("On", True), ("no", False), ("false", False), ("wide", "wide")],
)
def test_a_typed_value_is_a_bool_or_text(text: str, value: object) -> None:
    assert parse_flag_value(text) == value
