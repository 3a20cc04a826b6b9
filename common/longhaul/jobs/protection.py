"""ECS task scale-in protection: protected while any job runs, renewed before it expires,
released when idle. A no-op (with one debug line) where `ECS_AGENT_URI` is not set."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx

__all__ = ["TaskProtection"]

log = logging.getLogger(__name__)


class TaskProtection:
    """Tracks busy jobs and keeps the task's protection in step."""

    def __init__(
        self,
        agent_uri: str | None,
        *,
        expires_minutes: int = 60,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._url = f"{agent_uri.rstrip('/')}/task-protection/v1/state" if agent_uri else None
        self._minutes = expires_minutes
        self._http = http or httpx.AsyncClient(timeout=5)
        self._busy = 0
        self._protected_until = 0.0
        self._lock = asyncio.Lock()
        if self._url is None:
            log.debug("ECS_AGENT_URI is not set: task scale-in protection is off")

    @property
    def protected(self) -> bool:
        """Whether this process last asked for protection and it has not expired."""
        return self._protected_until > time.time()

    async def _put(self, enabled: bool) -> None:
        if self._url is None:
            return
        body: dict[str, object] = {"ProtectionEnabled": enabled}
        if enabled:
            body["ExpiresInMinutes"] = self._minutes
        try:
            response = await self._http.put(self._url, json=body)
            response.raise_for_status()
        except httpx.HTTPError as exc:  # protection is best effort; the job goes on
            log.warning("task protection update failed: %s", exc)
            return
        self._protected_until = time.time() + self._minutes * 60 if enabled else 0.0

    async def acquire(self) -> None:
        """A job started: make sure the task is protected."""
        async with self._lock:
            self._busy += 1
            if self._busy == 1 or not self.protected:
                await self._put(True)

    async def release(self) -> None:
        """A job ended: drop protection when nothing runs any more."""
        async with self._lock:
            self._busy = max(0, self._busy - 1)
            if self._busy == 0:
                await self._put(False)

    async def renew_if_due(self, margin_s: float = 300) -> None:
        """While busy, renew protection that would expire within `margin_s`."""
        async with self._lock:
            if self._busy and self._protected_until - time.time() < margin_s:
                await self._put(True)

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()
