"""Publishing facts to the platform bus: validate first, respect PutEvents' limits, retry
only the entries that failed."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from typing import Any, Protocol

from opentelemetry.trace import SpanKind
from pydantic import ValidationError

from longhaul.events.envelope import Envelope
from longhaul.events.exceptions import EventError, EventTooLarge, InvalidEvent, PublishError
from longhaul.events.registry import Event, lookup
from longhaul.observability import context
from longhaul.observability.tracing import inject, tracer

__all__ = ["MAX_BATCH_BYTES", "MAX_BATCH_ENTRIES", "EventPublisher", "envelope_for"]

MAX_BATCH_ENTRIES = 10
MAX_BATCH_BYTES = 256 * 1024

log = logging.getLogger(__name__)


class PutEventsClient(Protocol):
    """The one call of the EventBridge client the publisher needs."""

    async def put_events(self, *, Entries: list[dict[str, Any]]) -> dict[str, Any]: ...


def envelope_for(event: Event, *, source: str, traceparent: str | None) -> Envelope:
    """Validate `event` against its registered model and wrap it; raise `InvalidEvent` if not."""
    model = type(event)
    try:
        registered = lookup(model.event_type, model.event_version)
    except (AttributeError, EventError) as exc:
        raise InvalidEvent(f"{model.__name__} is not a registered event: {exc}") from None
    if registered is not model:
        raise InvalidEvent(f"{model.__name__} is not the model registered for {model.event_type}")
    try:
        # Re-validate: a model built with model_construct() or mutated skipped validation.
        data = model.model_validate(event.model_dump(mode="python")).model_dump(mode="json")
    except ValidationError as exc:
        raise InvalidEvent(f"{model.event_type} v{model.event_version}: {exc}") from None
    return Envelope(
        type=model.event_type,
        version=model.event_version,
        source=source,
        correlation_id=context.correlation_id() or context.new_correlation_id(),
        traceparent=traceparent,
        data=data,
    )


def _entry_size(entry: dict[str, Any]) -> int:
    """PutEvents' own size rule: the UTF-8 bytes of Source, DetailType, Detail, plus Time."""
    size = 14  # Time
    for key in ("Source", "DetailType", "Detail"):
        size += len(entry[key].encode())
    return size


def _batches(entries: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    batches: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    current_bytes = 0
    for entry in entries:
        size = _entry_size(entry)
        if current and (
            len(current) == MAX_BATCH_ENTRIES or current_bytes + size > MAX_BATCH_BYTES
        ):
            batches.append(current)
            current, current_bytes = [], 0
        current.append(entry)
        current_bytes += size
    if current:
        batches.append(current)
    return batches


class EventPublisher:
    """Publishes registered events to one bus under one source."""

    def __init__(
        self,
        client: PutEventsClient,
        *,
        bus_name: str,
        source: str,
        max_attempts: int = 5,
        base_delay_s: float = 0.05,
        max_delay_s: float = 2.0,
    ) -> None:
        self._client = client
        self._bus = bus_name
        self._source = source
        self._max_attempts = max_attempts
        self._base_delay = base_delay_s
        self._max_delay = max_delay_s

    async def publish(self, *events: Event) -> list[Envelope]:
        """Validate every event, then send them all; raise `PublishError` if any stays unsent."""
        with tracer().start_as_current_span("publish", kind=SpanKind.PRODUCER) as span:
            traceparent = inject().get("traceparent")
            envelopes = [
                envelope_for(e, source=self._source, traceparent=traceparent) for e in events
            ]
            span.set_attribute("messaging.system", "aws.eventbridge")
            span.set_attribute("messaging.batch.message_count", len(envelopes))
            span.set_attribute("messaging.event_types", sorted({e.type for e in envelopes}))
            entries = [self._entry(envelope) for envelope in envelopes]
            for envelope, entry in zip(envelopes, entries, strict=True):
                if _entry_size(entry) > MAX_BATCH_BYTES:
                    raise EventTooLarge(
                        f"{envelope.type} event {envelope.id} is {_entry_size(entry)} bytes, "
                        f"over the {MAX_BATCH_BYTES}-byte limit; store the payload in S3 and "
                        "send its key"
                    )
            failed: list[tuple[str, str]] = []
            for batch in _batches(entries):
                failed += await self._send(batch)
            if failed:
                raise PublishError(f"{len(failed)} of {len(entries)} events not published", failed)
            return envelopes

    def _entry(self, envelope: Envelope) -> dict[str, Any]:
        return {
            "Source": self._source,
            "DetailType": envelope.type,
            "Detail": envelope.model_dump_json(),
            "EventBusName": self._bus,
        }

    async def _send(self, batch: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
        pending = list(batch)
        errors: list[str] = []
        for attempt in range(1, self._max_attempts + 1):
            response = await self._client.put_events(Entries=pending)
            if not response.get("FailedEntryCount"):
                return []
            # Results are positional: entry i of the response answers entry i of the request.
            retry: list[dict[str, Any]] = []
            errors = []
            for entry, result in zip(pending, response["Entries"], strict=True):
                if "ErrorCode" in result:
                    retry.append(entry)
                    errors.append(result["ErrorCode"])
            pending = retry
            if attempt < self._max_attempts:
                delay = min(self._max_delay, self._base_delay * 2 ** (attempt - 1))
                log.warning(
                    "retrying events refused by PutEvents",
                    extra={"refused": len(pending), "attempt": attempt, "error_codes": errors},
                )
                await asyncio.sleep(random.uniform(0, delay))  # full jitter
        return [
            (Envelope.model_validate_json(entry["Detail"]).id, code)
            for entry, code in zip(pending, errors, strict=True)
        ]
