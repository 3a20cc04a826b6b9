"""Job types: plain typed async handlers of (payload, ctx), registered by name."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

if TYPE_CHECKING:
    from longhaul.jobs.context import JobContext

__all__ = ["JobType", "JobTypes"]

P = TypeVar("P", bound=BaseModel)
Handler = Callable[[Any, "JobContext"], Coroutine[Any, Any, BaseModel | dict[str, Any] | None]]


@dataclass(frozen=True)
class JobType:
    """One registered job type."""

    name: str
    payload: type[BaseModel]
    handler: Handler
    max_attempts: int
    timeout_s: float | None


class JobTypes:
    """The job types a service runs."""

    def __init__(self) -> None:
        self._types: dict[str, JobType] = {}

    def handler(
        self,
        name: str,
        *,
        payload: type[P],
        max_attempts: int = 3,
        timeout_s: float | None = None,
    ) -> Callable[
        [Callable[[P, JobContext], Coroutine[Any, Any, Any]]],
        Callable[[P, JobContext], Coroutine[Any, Any, Any]],
    ]:
        """Register the decorated `async def handler(payload, ctx)` as job type `name`.

        `max_attempts` counts failed attempts (a kill or a shutdown is not a failure);
        `timeout_s` bounds one attempt.
        """
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

        def register(
            fn: Callable[[P, JobContext], Coroutine[Any, Any, Any]],
        ) -> Callable[[P, JobContext], Coroutine[Any, Any, Any]]:
            if name in self._types:
                raise ValueError(f"job type {name!r} is registered twice")
            self._types[name] = JobType(name, payload, fn, max_attempts, timeout_s)
            return fn

        return register

    def get(self, name: str) -> JobType | None:
        """The job type called `name`, if any."""
        return self._types.get(name)

    @property
    def names(self) -> list[str]:
        """Every registered job type."""
        return sorted(self._types)
