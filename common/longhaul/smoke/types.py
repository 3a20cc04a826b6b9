"""What a smoke check works with: the service's public base, clients with and without the
smoke user's token, the longest a wait may take, and a way to report each step."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import httpx

from longhaul.spec import ServiceSpec

__all__ = ["SmokeContext", "SmokeFailed"]

T = TypeVar("T")


class SmokeFailed(RuntimeError):
    """A smoke check did not hold; the message says which and what was seen instead."""


@dataclass
class SmokeContext:
    """One service under the smoke test."""

    service: ServiceSpec
    api: httpx.AsyncClient  # the service's public base, with the smoke user's bearer token
    anonymous: httpx.AsyncClient  # the same base, without a token
    timeout_s: float  # the longest one wait may take (a worker may first start from zero)
    say: Callable[[str], None]

    @asynccontextmanager
    async def step(self, what: str) -> AsyncIterator[None]:
        """Report `what` as passed when the block ends, or fail naming it."""
        started = time.monotonic()
        try:
            yield
        except SmokeFailed as exc:
            raise SmokeFailed(f"{what}: {exc}") from None
        except httpx.HTTPError as exc:
            raise SmokeFailed(f"{what}: {type(exc).__name__}: {exc}") from None
        elapsed = time.monotonic() - started
        self.say(f"ok    {self.service.name:<12} {what} ({_duration(elapsed)})")

    @staticmethod
    def fail(message: str) -> NoReturn:
        """Fail the current step."""
        raise SmokeFailed(message)

    def expect(self, response: httpx.Response, status: int) -> Any:
        """`response`'s JSON body (None if empty) when its status is `status`; else fail,
        quoting what came back."""
        if response.status_code != status:
            body = " ".join(response.text.split())[:300]
            self.fail(
                f"{response.request.method} {response.request.url.path} answered "
                f"{response.status_code}, not {status}: {body}"
            )
        return response.json() if response.content else None

    async def until(
        self, probe: Callable[[], Awaitable[T | None]], what: str, *, every_s: float = 1.0
    ) -> T:
        """The first value `probe` returns that is not None, asking every `every_s` for at
        most `timeout_s`."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            found = await probe()
            if found is not None:
                return found
            if time.monotonic() > deadline:
                self.fail(f"no {what} within {_duration(self.timeout_s)}")
            await asyncio.sleep(every_s)


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"
