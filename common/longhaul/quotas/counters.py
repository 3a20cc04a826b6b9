"""Counted quotas: uploads per hour (a fixed window) and stored bytes (reservations kept
as long as the uploads they stand for)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from longhaul.quotas.table import QuotaTable
from longhaul.quotas.types import QuotaExceeded

__all__ = ["BytesReserved", "QuotaCounters", "UploadCounted"]

log = logging.getLogger(__name__)

HOUR_S = 3600
DAY_S = 86_400
UPLOADS = "UPLOADS"
BYTES = "BYTES"
# Conditional writes lost to concurrent ones before a request gives up (each loss means
# another request changed the item, so this is only ever reached under a storm).
ATTEMPTS = 5


@dataclass(frozen=True)
class UploadCounted:
    """An upload counted in the hour `window` (to give back if the request fails later)."""

    window: int


@dataclass(frozen=True)
class BytesReserved:
    """`amount` bytes reserved on `day` (days since the epoch, UTC)."""

    day: int
    amount: int


class QuotaCounters(QuotaTable):
    """Uploads per hour and stored bytes."""

    async def count_upload(self, owner: str) -> UploadCounted:
        """Count one upload in this hour, or raise `QuotaExceeded`. The window is fixed
        (the clock's hour), so a burst across an hour's end may start up to twice the
        limit within sixty minutes."""
        limit = self.limits.uploads_per_hour
        for _ in range(ATTEMPTS):
            now = self._now()
            window = int(now // HOUR_S)
            names = {"#w": "window"}
            if await self._update(
                owner,
                UPLOADS,
                "ADD n :one",
                "#w = :w AND n < :limit",
                names,
                {":one": 1, ":w": window, ":limit": limit},
            ):
                return UploadCounted(window)
            if await self._update(
                owner,
                UPLOADS,
                "SET #w = :w, n = :one",
                "attribute_not_exists(#w) OR #w < :w",
                names,
                {":one": 1, ":w": window},
            ):
                return UploadCounted(window)
            item = await self._read(owner, UPLOADS)
            if item and item.get("window") == window and item.get("n", 0) >= limit:
                raise QuotaExceeded(
                    "uploads_per_hour",
                    limit,
                    (window + 1) * HOUR_S - now,
                    f"at most {limit} uploads an hour; this hour's are used",
                )
        raise QuotaExceeded("uploads_per_hour", limit, 1, "too many uploads at once; retry")

    async def uncount_upload(self, owner: str, counted: UploadCounted) -> None:
        """Give back an upload counted for a request that then failed (best effort)."""
        try:
            await self._update(
                owner,
                UPLOADS,
                "ADD n :minus",
                "#w = :w AND n > :zero",
                {"#w": "window"},
                {":minus": -1, ":w": counted.window, ":zero": 0},
            )
        except Exception as exc:
            log.warning("could not give back an upload's count: %s", exc)

    async def reserve_bytes(self, owner: str, amount: int, keep_days: int) -> BytesReserved:
        """Reserve `amount` bytes for `keep_days` days from today (UTC), or raise
        `QuotaExceeded`. Reservations of a day past its `keep_days` no longer count."""
        limit = self.limits.stored_bytes
        today = int(self._now() // DAY_S)
        for _ in range(ATTEMPTS):
            if amount <= limit and await self._update(
                owner,
                BYTES,
                "SET days.#d = if_not_exists(days.#d, :zero) + :n, #t = #t + :n",
                "#t <= :room",
                {"#d": str(today + keep_days), "#t": "total"},
                {":n": amount, ":zero": 0, ":room": limit - amount},
            ):
                return BytesReserved(today + keep_days, amount)
            item = await self._read(owner, BYTES)
            if item is None:
                await self._create(owner, BYTES, {"days": {}, "total": 0})
                continue
            # Each day's entry is keyed by the day it lapses on.
            days = {int(day): int(n) for day, n in item["days"].items()}
            lapsed = {day: n for day, n in days.items() if day <= today}
            if lapsed:
                await self._expire(owner, lapsed)
                continue
            raise QuotaExceeded(
                "stored_bytes",
                limit,
                self._bytes_free_in(days, int(item["total"]), amount, limit),
                f"at most {limit} bytes of uploads kept at once; {item['total']} reserved, "
                f"this one declares {amount}",
            )
        raise QuotaExceeded("stored_bytes", limit, 1, "too many uploads at once; retry")

    async def release_bytes(self, owner: str, reserved: BytesReserved) -> None:
        """Give back bytes reserved for a request that then failed (best effort)."""
        try:
            await self._update(
                owner,
                BYTES,
                "SET days.#d = days.#d - :n, #t = #t - :n",
                "days.#d >= :n",
                {"#d": str(reserved.day), "#t": "total"},
                {":n": reserved.amount},
            )
        except Exception as exc:
            log.warning("could not give back reserved bytes: %s", exc)

    async def _expire(self, owner: str, lapsed: dict[int, int]) -> None:
        """Drop lapsed days' reservations from the total, each once: the condition fails
        if another request dropped them first."""
        names = {f"#d{i}": str(day) for i, day in enumerate(lapsed)}
        values = {f":v{i}": n for i, n in enumerate(lapsed.values())}
        await self._update(
            owner,
            BYTES,
            "REMOVE " + ", ".join(f"days.{name}" for name in names) + " SET #t = #t - :sum",
            " AND ".join(f"days.#d{i} = :v{i}" for i in range(len(lapsed))),
            {**names, "#t": "total"},
            {**values, ":sum": sum(lapsed.values())},
        )

    def _bytes_free_in(self, days: dict[int, int], total: int, amount: int, limit: int) -> float:
        """Seconds until enough reservations lapse for `amount` more bytes to fit."""
        now = self._now()
        if amount > limit:
            return max(days, default=math.ceil(now / DAY_S)) * DAY_S - now
        for day in sorted(days):
            total -= days[day]
            if total + amount <= limit:
                return day * DAY_S - now
        return DAY_S
