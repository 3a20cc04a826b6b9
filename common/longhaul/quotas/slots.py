"""Slot quotas: concurrent jobs and open event streams.

An owner's slots are a map in one item; a new slot is one conditional write that holds
only while the map has fewer entries than the limit. Slots are never counted down by the
code that ends them (a job's end is the worker's, a stream's task may die): when the map
is full, the request looks at each slot, removes the ones whose job has ended or whose
stream's lease lapsed, and tries again.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

from longhaul.jobs.store.items import from_item, to_item
from longhaul.jobs.types import TERMINAL
from longhaul.quotas.table import QuotaTable
from longhaul.quotas.types import QuotaExceeded

__all__ = ["QuotaSlots", "StreamSlot"]

log = logging.getLogger(__name__)

JOBS = "JOBS"
STREAMS = "STREAMS"
ATTEMPTS = 5
# A job's slot waits this long for its job's row before it counts as never written.
JOB_PENDING_S = 60.0
# What a caller over the job quota is told to wait: jobs end when they end.
JOB_RETRY_AFTER_S = 30
# A stream's slot lapses this long after its last renewal (its task died); it renews at a
# third of it.
STREAM_LEASE_S = 30.0
_ENDED = {state.value for state in TERMINAL}


class StreamSlot:
    """One open event stream's slot: renew it while the stream runs, close it after."""

    def __init__(self, slots: QuotaSlots, owner: str, slot: str, ends_at: float) -> None:
        self._slots = slots
        self.owner = owner
        self.slot = slot
        self.ends_at = ends_at  # wall clock: the stream's lifetime ends here
        self.renewed_at = slots._now()

    async def renew_if_due(self) -> bool:
        """Extend the slot's lease once a third of it has passed; False if the slot is
        gone (it lapsed while this task was stalled), so the stream must end."""
        now = self._slots._now()
        if now - self.renewed_at < STREAM_LEASE_S / 3:
            return True
        renewed = await self._slots._update(
            self.owner,
            STREAMS,
            "SET slots.#s.expires = :expires",
            "attribute_exists(slots.#s)",
            {"#s": self.slot},
            {":expires": now + STREAM_LEASE_S},
        )
        if renewed:
            self.renewed_at = now
        return renewed

    async def close(self) -> None:
        """Free the slot (best effort: a slot left behind lapses with its lease)."""
        try:
            await self._slots._update(
                self.owner, STREAMS, "REMOVE slots.#s", None, {"#s": self.slot}
            )
        except Exception as exc:
            log.warning("could not free a stream's slot: %s", exc)


class QuotaSlots(QuotaTable):
    """Concurrent jobs and open streams."""

    async def take_job_slot(
        self, owner: str, *, key: str | None = None, pending_s: float = JOB_PENDING_S
    ) -> str | None:
        """A slot for a job about to be submitted with Idempotency-Key `key` (or by a later
        request: an upload's transcode), or `QuotaExceeded`. Until `bind_job_slot` names
        its job, the slot counts for `pending_s`, or for as long as the job `key` made
        runs. None (no slot needed) for a `key` that already made a job: its replay."""
        limit = self.limits.concurrent_jobs
        slot = secrets.token_hex(8)
        now = self._now()
        value = {"until": now + pending_s, "key": key}
        for _ in range(ATTEMPTS):
            if await self._add(owner, JOBS, slot, value, limit):
                return slot
            item = await self._read(owner, JOBS)
            if item is None:
                await self._create(owner, JOBS, {"slots": {}})
                continue
            if len(item["slots"]) < limit or await self._free_job_slots(owner, item["slots"]):
                continue  # room was made in between, or now
            if key is not None and await self._jobs_of_keys(owner, [key]):
                return None
            raise QuotaExceeded(
                "concurrent_jobs",
                limit,
                JOB_RETRY_AFTER_S,
                f"at most {limit} jobs queued or running at once; wait for one to end",
            )
        raise QuotaExceeded("concurrent_jobs", limit, 1, "too many submissions at once; retry")

    async def bind_job_slot(self, owner: str, slot: str, job_id: str) -> None:
        """Name the job a slot stands for (best effort: unnamed, it lapses as pending)."""
        try:
            await self._update(
                owner,
                JOBS,
                "SET slots.#s.job = :job",
                "attribute_exists(slots.#s)",
                {"#s": slot},
                {":job": job_id},
            )
        except Exception as exc:
            log.warning("could not name a job slot's job: %s", exc)

    async def release_job_slot(self, owner: str, slot: str) -> None:
        """Free a slot whose job was not made (best effort: it lapses as pending)."""
        try:
            await self._update(owner, JOBS, "REMOVE slots.#s", None, {"#s": slot})
        except Exception as exc:
            log.warning("could not free a job slot: %s", exc)

    async def open_stream(self, owner: str) -> StreamSlot:
        """A slot for an event stream that ends after the stream lifetime, or
        `QuotaExceeded`."""
        limit = self.limits.streams
        slot = secrets.token_hex(8)
        for _ in range(ATTEMPTS):
            now = self._now()
            ends_at = now + self.limits.stream_lifetime_s
            if await self._add(
                owner, STREAMS, slot, {"expires": now + STREAM_LEASE_S, "ends": ends_at}, limit
            ):
                return StreamSlot(self, owner, slot, ends_at)
            item = await self._read(owner, STREAMS)
            if item is None:
                await self._create(owner, STREAMS, {"slots": {}})
                continue
            if len(item["slots"]) < limit:
                continue  # room was made in between
            lapsed = [s for s, v in item["slots"].items() if v["expires"] < now]
            if lapsed:
                # Each only if still lapsed: a renewal in between keeps its slot.
                await self._remove(
                    owner,
                    STREAMS,
                    {s: "slots.{name}.expires < :now" for s in lapsed},
                    {":now": now},
                )
                continue
            first_end = min(min(v["ends"], v["expires"]) for v in item["slots"].values())
            raise QuotaExceeded(
                "streams",
                limit,
                first_end - now,
                f"at most {limit} event streams open at once",
            )
        raise QuotaExceeded("streams", limit, 1, "too many streams opened at once; retry")

    async def _add(
        self, owner: str, quota: str, slot: str, value: dict[str, Any], limit: int
    ) -> bool:
        return await self._update(
            owner,
            quota,
            "SET slots.#s = :slot",
            "attribute_exists(slots) AND size(slots) < :limit",
            {"#s": slot},
            {":slot": {k: v for k, v in value.items() if v is not None}, ":limit": limit},
        )

    async def _remove(
        self, owner: str, quota: str, conditions: dict[str, str], values: dict[str, Any]
    ) -> bool:
        """Remove slots in one write, each under its condition (`{name}` is its path's
        placeholder); none if any condition fails."""
        names = {f"#s{i}": slot for i, slot in enumerate(conditions)}
        checks = [
            condition.format(name=f"#s{i}")
            for i, condition in enumerate(conditions.values())
            if condition
        ]
        return await self._update(
            owner,
            quota,
            "REMOVE " + ", ".join(f"slots.{name}" for name in names),
            " AND ".join(f"({check})" for check in checks) or None,
            names,
            values or None,
        )

    async def _free_job_slots(self, owner: str, slots: dict[str, dict[str, Any]]) -> bool:
        """Remove the slots whose job ended, or that waited past their time for a job that
        was never made; whether any went."""
        now = self._now()
        by_key = await self._jobs_of_keys(
            owner, [v["key"] for v in slots.values() if "key" in v and "job" not in v]
        )
        job_of = {s: v.get("job") or by_key.get(v.get("key", "")) for s, v in slots.items()}
        states = await self._states([job for job in job_of.values() if job])
        free: dict[str, str] = {}
        for slot, value in slots.items():
            job = job_of[slot]
            if job and states.get(job, "missing") in _ENDED | {"missing"}:
                free[slot] = ""  # an ended job never runs again
            elif not job and value["until"] < now:
                # Unless its job was named in between.
                free[slot] = "attribute_not_exists(slots.{name}.job)"
        return bool(free) and await self._remove(owner, JOBS, free, {})

    async def _jobs_of_keys(self, owner: str, keys: list[str]) -> dict[str, str]:
        """The job each Idempotency-Key of `owner` made, for those that made one."""
        found: dict[str, str] = {}
        for start in range(0, len(keys), 100):
            records = await self._batch_get(
                [{"PK": f"IDEM#{owner}#{key}", "SK": "IDEM"} for key in keys[start : start + 100]]
            )
            found |= {r["PK"].removeprefix(f"IDEM#{owner}#"): r["job_id"] for r in records}
        return found

    async def _states(self, job_ids: list[str]) -> dict[str, str]:
        """The state of each job that exists (consistent reads)."""
        states: dict[str, str] = {}
        for start in range(0, len(job_ids), 100):
            rows = await self._batch_get(
                [{"PK": f"JOB#{job_id}", "SK": "META"} for job_id in job_ids[start : start + 100]],
                "id, #state",
            )
            states |= {row["id"]: row["state"] for row in rows}
        return states

    async def _batch_get(
        self, keys: list[dict[str, str]], projection: str | None = None
    ) -> list[dict[str, Any]]:
        unique = list({(k["PK"], k["SK"]): k for k in keys}.values())
        if not unique:
            return []
        request: dict[str, Any] = {"Keys": [to_item(k) for k in unique], "ConsistentRead": True}
        if projection:
            request["ProjectionExpression"] = projection + ", PK"
            request["ExpressionAttributeNames"] = {"#state": "state"}
        pending: dict[str, Any] = {self._table: request}
        found: list[dict[str, Any]] = []
        delay = 0.05
        while pending:
            response = await self._db.batch_get_item(RequestItems=pending)
            found += [from_item(i) for i in response.get("Responses", {}).get(self._table, [])]
            pending = response.get("UnprocessedKeys") or {}
            if pending:
                await asyncio.sleep(delay)
                delay = min(1.0, delay * 2)
        return found
