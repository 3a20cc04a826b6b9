"""Job types: plain typed async handlers of (payload, ctx), registered by name."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, get_type_hints

from pydantic import BaseModel

if TYPE_CHECKING:
    from longhaul.jobs.context import JobContext
    from longhaul.jobs.submit import JobResources
    from longhaul.jobs.types import Job

__all__ = ["JobType", "JobTypes"]

P = TypeVar("P", bound=BaseModel)
Handler = Callable[[Any, "JobContext"], Coroutine[Any, Any, BaseModel | dict[str, Any] | None]]
# Called once a job of the type is terminal (succeeded, failed or cancelled), with the job
# and the worker's resources; it may run more than once for one job, so it is idempotent.
EndHook = Callable[["Job", "JobResources | None"], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class JobType:
    """One registered job type."""

    name: str
    payload: type[BaseModel]
    handler: Handler
    max_attempts: int
    timeout_s: float | None
    internal: bool = False  # spawned by other jobs only: not accepted by POST /jobs
    on_end: EndHook | None = None
    admit: Callable[[Any, str], bool] | None = None
    output: type[BaseModel] | None = None  # the result's model, documented in the OpenAPI


def _returned_model(fn: Callable[..., Any]) -> type[BaseModel] | None:
    """The pydantic model `fn` is annotated to return, if it is one."""
    try:
        returned = get_type_hints(fn).get("return")
    except Exception:  # an annotation that cannot be resolved here documents nothing
        return None
    return returned if isinstance(returned, type) and issubclass(returned, BaseModel) else None


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
        internal: bool = False,
        on_end: EndHook | None = None,
        admit: Callable[[P, str], bool] | None = None,
        output: type[BaseModel] | None = None,
    ) -> Callable[
        [Callable[[P, JobContext], Coroutine[Any, Any, Any]]],
        Callable[[P, JobContext], Coroutine[Any, Any, Any]],
    ]:
        """Register the decorated `async def handler(payload, ctx)` as job type `name`.

        `max_attempts` counts failed attempts (a kill or a shutdown is not a failure);
        `timeout_s` bounds one attempt. An `internal` type is a unit of work that other jobs
        spawn (`ctx.spawn`): callers cannot submit it, and it publishes no job facts.
        `on_end` runs when a job of the type is terminal, however it got there (publish a
        domain fact, clean up); it must be idempotent. `admit(payload, caller_sub)` is
        asked by POST /jobs: False answers 404, as for anything not the caller's.
        `output` is the model of the job's result, documented in the service's OpenAPI
        (by default the model the handler is annotated to return, if any).
        """
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

        def register(
            fn: Callable[[P, JobContext], Coroutine[Any, Any, Any]],
        ) -> Callable[[P, JobContext], Coroutine[Any, Any, Any]]:
            if name in self._types:
                raise ValueError(f"job type {name!r} is registered twice")
            self._types[name] = JobType(
                name,
                payload,
                fn,
                max_attempts,
                timeout_s,
                internal,
                on_end,
                admit,
                output or _returned_model(fn),
            )
            return fn

        return register

    def get(self, name: str) -> JobType | None:
        """The job type called `name`, if any."""
        return self._types.get(name)

    def public(self, name: str) -> JobType | None:
        """The job type called `name` if callers may submit it."""
        found = self._types.get(name)
        return None if found is None or found.internal else found

    @property
    def names(self) -> list[str]:
        """Every registered job type."""
        return sorted(self._types)

    @property
    def public_names(self) -> list[str]:
        """The job types callers may submit."""
        return sorted(name for name, found in self._types.items() if not found.internal)
