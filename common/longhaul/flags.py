"""Feature flags: switches for risky behaviour, read from one SSM parameter per service.

The parameter (`LONGHAUL_FLAGS_PARAMETER`, by convention `/longhaul/<env>/<service>/flags`)
holds a JSON object of flag name -> `true`/`false` or a string. The service declares every
flag it reads, with its default, in code; the parameter only overrides declared flags. It is
read through the service's own clients and cached for `LONGHAUL_FLAGS_TTL_S` (30 s), so a
change takes effect within that long, on every task, with no deployment.

Reading flags never fails a request: a missing parameter means the defaults; a value that is
not a JSON object, an undeclared name or a value of the wrong type is logged (once per
change of the parameter) and ignored; an AWS error or a slow read keeps the last good values
and is tried again after the TTL. docs/flags.md has the operator's side.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

__all__ = ["FlagValue", "Flags", "UnknownFlag", "flags_parameter_name", "parse_flag_value"]

log = logging.getLogger(__name__)

FlagValue = bool | str
READ_TIMEOUT_S = 2.0  # a flag read is on a request's path: never wait on SSM for longer


class UnknownFlag(KeyError):
    """The code asked for a flag the service does not declare (a typo, not an outage)."""


def flags_parameter_name(env: str, service: str) -> str:
    """The SSM parameter holding `service`'s flags in environment `env`."""
    return f"/longhaul/{env}/{service}/flags"


def parse_flag_value(text: str) -> FlagValue:
    """A flag value as a person types it: true/false (on/off, yes/no) or any other string."""
    lowered = text.strip().lower()
    if lowered in ("true", "on", "yes"):
        return True
    if lowered in ("false", "off", "no"):
        return False
    return text


class Flags:
    """One service's flags: its declared defaults overlaid with the parameter's values."""

    def __init__(
        self,
        aws: Any,
        parameter: str | None,
        *,
        defaults: Mapping[str, FlagValue],
        ttl_s: float = 30.0,
        read_timeout_s: float = READ_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`aws` is the service's `AwsClients` (anything with `await aws.get("ssm")`);
        without a `parameter` the flags are the defaults and nothing is read."""
        self._aws = aws
        self.parameter = parameter
        self.defaults = dict(defaults)
        self._ttl_s = ttl_s
        self._read_timeout_s = read_timeout_s
        self._clock = clock
        self._overrides: dict[str, FlagValue] = {}
        self._fresh_until = float("-inf")
        self._seen: str | None = None  # the parameter's text last parsed (logs once per change)
        self._lock = asyncio.Lock()

    async def values(self) -> dict[str, FlagValue]:
        """Every declared flag with its current value."""
        await self._refresh()
        return {**self.defaults, **self._overrides}

    async def value(self, name: str) -> FlagValue:
        """The current value of the declared flag `name`."""
        if name not in self.defaults:
            raise UnknownFlag(name)
        return (await self.values())[name]

    async def enabled(self, name: str) -> bool:
        """Whether the declared flag `name` is on (`true`)."""
        return (await self.value(name)) is True

    async def _refresh(self) -> None:
        if self.parameter is None or self._clock() < self._fresh_until:
            return
        if self._lock.locked() and self._seen is not None:
            return  # another request is reading; the last values serve meanwhile
        async with self._lock:
            if self._clock() < self._fresh_until:
                return
            try:
                text = await asyncio.wait_for(self._read(self.parameter), self._read_timeout_s)
            except (ClientError, BotoCoreError, TimeoutError) as exc:
                log.warning(
                    "flags not read; keeping the last values",
                    extra={"parameter": self.parameter, "error": _describe(exc)},
                )
            else:
                self._apply(text)
            self._fresh_until = self._clock() + self._ttl_s

    async def _read(self, parameter: str) -> str:
        ssm = await self._aws.get("ssm")
        try:
            response = await ssm.get_parameter(Name=parameter)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ParameterNotFound":
                return ""
            raise
        return str(response["Parameter"]["Value"])

    def _apply(self, text: str) -> None:
        """Take the parameter's `text` ("" when it does not exist) as the overrides."""
        changed, self._seen = text != self._seen, text
        if not text.strip():
            if changed:
                log.info(
                    "no flags parameter; the defaults apply", extra={"parameter": self.parameter}
                )
            self._overrides = {}
            return
        overrides, problems = _parse(text, self.defaults)
        if overrides is None:  # not a JSON object: the last good values stay
            if changed:
                log.warning(
                    "flags parameter ignored: %s",
                    problems[0],
                    extra={"parameter": self.parameter},
                )
            return
        if changed:
            for problem in problems:
                log.warning("flag ignored: %s", problem, extra={"parameter": self.parameter})
            log.info(
                "flags read",
                extra={"parameter": self.parameter, "flags": {**self.defaults, **overrides}},
            )
        self._overrides = overrides


def _parse(
    text: str, defaults: Mapping[str, FlagValue]
) -> tuple[dict[str, FlagValue] | None, list[str]]:
    """The valid overrides in `text` and what was wrong with the rest; None when `text` is
    not a JSON object at all."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        return None, [f"not JSON ({exc})"]
    if not isinstance(document, dict):
        return None, [f"a JSON object is required, not {type(document).__name__}"]
    overrides: dict[str, FlagValue] = {}
    problems: list[str] = []
    for name, value in document.items():
        if name not in defaults:
            problems.append(f"{name!r} is not a flag of this service")
        elif type(value) is not type(defaults[name]):
            wanted = "true or false" if isinstance(defaults[name], bool) else "a string"
            problems.append(f"{name!r} must be {wanted}, not {json.dumps(value)}")
        else:
            overrides[name] = value
    return overrides, problems


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    if isinstance(exc, TimeoutError):
        return "timed out"
    return type(exc).__name__
