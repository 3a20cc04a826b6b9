"""Consuming events from the service's queue: dispatch on (type, version), batch handlers,
partial batch failure.

What happens to each message, by design:

| message                                  | outcome                                          |
|------------------------------------------|--------------------------------------------------|
| handled                                  | deleted                                          |
| handler raised, or reported it failed    | kept; visible again after a backoff; DLQ at last |
| unknown type (a pattern matched too much)| counted, logged, deleted: nothing here wants it  |
| known type, unknown version              | counted, logged, kept: a newer producer is ahead |
|                                          | of this consumer; once it is deployed, a DLQ     |
|                                          | redrive delivers it                              |
| not JSON, not an envelope, invalid data  | counted, logged, kept: it reaches the DLQ intact |

A router with an `on_every` handler (a consumer of every fact, such as analytics) gives
that handler every decoded envelope no typed route takes, whatever its type and version,
registered or not, with the envelope's data as a plain dict; only undecodable messages
are then left unrouted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from pydantic import ValidationError

from longhaul.events.aws import aws_envelope, is_aws_event
from longhaul.events.envelope import Envelope
from longhaul.events.exceptions import UnknownEventType, UnknownEventVersion
from longhaul.events.registry import Event, lookup
from longhaul.observability import context
from longhaul.observability.tracing import extract, meter, tracer

__all__ = [
    "BatchResult",
    "Delivery",
    "EventRouter",
    "Outcome",
    "SqsConsumer",
    "message_attributes",
]

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)

_unrouted = meter().create_counter(
    "longhaul.events.unrouted", description="Messages no handler took, by reason"
)
_handled = meter().create_counter("longhaul.events.handled", description="Events handled")
_failed = meter().create_counter(
    "longhaul.events.failed", description="Events whose handler failed"
)


def message_attributes(envelope: Envelope) -> dict[str, Any]:
    """SQS message attributes that carry the correlation id and trace context of `envelope`."""
    attributes = {"correlation_id": {"DataType": "String", "StringValue": envelope.correlation_id}}
    if envelope.traceparent:
        attributes["traceparent"] = {"DataType": "String", "StringValue": envelope.traceparent}
    return attributes


@dataclass(frozen=True)
class Delivery(Generic[E]):
    """One received event: the typed data, its envelope, and its SQS message."""

    message_id: str
    envelope: Envelope
    event: E
    receive_count: int
    resources: Any = None  # what the service hands its handlers (JobResources in a worker)

    @contextmanager
    def activate(self, name: str | None = None) -> Iterator[trace.Span]:
        """Restore the event's correlation id and continue its trace for the block."""
        parent = extract({"traceparent": self.envelope.traceparent or ""})
        with (
            context.bind(correlation=self.envelope.correlation_id),
            tracer().start_as_current_span(
                name or f"consume {self.envelope.type}",
                context=parent,
                kind=SpanKind.CONSUMER,
                attributes={
                    "messaging.system": "aws.sqs",
                    "messaging.message.id": self.message_id,
                    "longhaul.event.type": self.envelope.type,
                    "longhaul.event.version": self.envelope.version,
                },
            ) as span,
        ):
            yield span


@dataclass
class BatchResult:
    """What a batch handler reports: the message ids that failed and must be redelivered."""

    failed: set[str] = field(default_factory=set)


OneHandler = Callable[[Delivery[Any]], Awaitable[None]]
BatchHandler = Callable[[list[Delivery[Any]]], Awaitable[BatchResult | None]]


@dataclass
class Outcome:
    """What to do with each received message after dispatch."""

    delete: list[str] = field(default_factory=list)  # receipt handles
    retry: list[tuple[str, int]] = field(default_factory=list)  # (receipt handle, receive count)


class _Every(Event):
    """Stands for "any event" in the route of an `on_every` handler (never registered)."""

    event_type: ClassVar[str] = "every"
    event_version: ClassVar[int] = 0


_EVERY = ("", 0)  # the group key of the deliveries an `on_every` handler takes


@dataclass
class _Route:
    model: type[Event]
    one: OneHandler | None = None
    batch: BatchHandler | None = None


class EventRouter:
    """Maps each registered event model to its handler."""

    def __init__(self, *, gather: int = 10, gather_wait_s: float = 0.2) -> None:
        """`gather`: how many received messages the consumer may hand the handlers at once
        (SQS gives at most 10 a receive; more are gathered over receives, for at most
        `gather_wait_s` after the first): a batch handler whose cost is per call, such as
        analytics' ingest, sees hundreds of events a call instead of ten."""
        if not 1 <= gather <= 1000:
            raise ValueError("gather must be between 1 and 1000 messages")
        self.gather = gather
        self.gather_wait_s = gather_wait_s
        self._routes: dict[tuple[str, int], _Route] = {}
        self._every: BatchHandler | None = None
        self.resources: Any = None  # set by the app: handed to handlers with each delivery
        self.unrouted: Counter[str] = Counter()  # reason -> count, also exported as a metric

    def on(self, model: type[E]) -> Callable[[Callable[[Delivery[E]], Awaitable[None]]], Any]:
        """Handle each event of `model` on its own; a raise fails only that message."""

        def register(handler: Callable[[Delivery[E]], Awaitable[None]]) -> Any:
            self._add(model, _Route(model, one=handler))
            return handler

        return register

    def on_batch(
        self, model: type[E]
    ) -> Callable[[Callable[[list[Delivery[E]]], Awaitable[BatchResult | None]]], Any]:
        """Handle the events of `model` of one receive together; report failures per message."""

        def register(handler: Callable[[list[Delivery[E]]], Awaitable[BatchResult | None]]) -> Any:
            self._add(model, _Route(model, batch=handler))
            return handler

        return register

    def on_every(
        self,
    ) -> Callable[[Callable[[list[Delivery[Any]]], Awaitable[BatchResult | None]]], Any]:
        """Handle, as one batch per receive, every decoded envelope no typed route takes:
        any type and version, registered or not; `delivery.event` is the envelope's data."""

        def register(
            handler: Callable[[list[Delivery[Any]]], Awaitable[BatchResult | None]],
        ) -> Any:
            if self._every is not None:
                raise ValueError("this router already has an on_every handler")
            self._every = handler
            return handler

        return register

    def _add(self, model: type[Event], route: _Route) -> None:
        key = (model.event_type, model.event_version)
        if lookup(*key) is not model:
            raise ValueError(f"{model.__name__} is not the registered model of {key}")
        if key in self._routes:
            raise ValueError(f"{key} already has a handler")
        self._routes[key] = route

    @property
    def event_keys(self) -> list[tuple[str, int]]:
        """The (type, version) pairs this router handles."""
        return sorted(self._routes)

    def _count(self, reason: str, message: dict[str, Any], **fields: Any) -> None:
        self.unrouted[reason] += 1
        _unrouted.add(1, {"reason": reason, **{k: str(v) for k, v in fields.items()}})
        log.warning(
            "message not routed: %s",
            reason,
            extra={"reason": reason, "message_id": message.get("MessageId"), **fields},
        )

    def _decode(self, message: dict[str, Any]) -> Envelope:
        """The envelope in an SQS message: EventBridge-wrapped, or sent straight to SQS."""
        document = json.loads(message["Body"])
        if is_aws_event(document):
            attribute = message.get("MessageAttributes", {}).get("correlation_id", {})
            return aws_envelope(document, attribute.get("StringValue"))
        if isinstance(document, dict) and "detail-type" in document and "detail" in document:
            document = document["detail"]  # EventBridge rule target: the envelope is the detail
        if isinstance(document, dict) and "correlation_id" not in document:
            attribute = message.get("MessageAttributes", {}).get("correlation_id", {})
            if "StringValue" in attribute:
                document["correlation_id"] = attribute["StringValue"]
        return Envelope.model_validate(document)

    async def dispatch(self, messages: Sequence[dict[str, Any]]) -> Outcome:
        """Route one receive's messages to their handlers and decide each message's fate."""
        outcome = Outcome()
        groups: dict[tuple[str, int], list[tuple[dict[str, Any], Delivery[Any]]]] = {}
        for message in messages:
            receipt = message["ReceiptHandle"]
            count = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
            try:
                envelope = self._decode(message)
            except Exception as exc:  # any body at all must not stop the consumer
                self._count("malformed", message, error=type(exc).__name__)
                outcome.retry.append((receipt, count))
                continue
            key = (envelope.type, envelope.version)
            if self._every is not None and key not in self._routes:
                raw: Delivery[Any] = Delivery(
                    message["MessageId"], envelope, envelope.data, count, self.resources
                )
                groups.setdefault(_EVERY, []).append((message, raw))
                continue
            try:
                route = self._routes.get(key)
                model = route.model if route else lookup(*key)
                data = model.model_validate(envelope.data)
            except UnknownEventType:
                self._count("unknown_type", message, type=envelope.type, version=envelope.version)
                outcome.delete.append(receipt)
                continue
            except UnknownEventVersion:
                self._count(
                    "unknown_version", message, type=envelope.type, version=envelope.version
                )
                outcome.retry.append((receipt, count))
                continue
            except ValidationError as exc:
                self._count("invalid_data", message, type=envelope.type, errors=exc.error_count())
                outcome.retry.append((receipt, count))
                continue
            if route is None:
                self._count("no_handler", message, type=envelope.type, version=envelope.version)
                outcome.delete.append(receipt)
                continue
            delivery = Delivery(message["MessageId"], envelope, data, count, self.resources)
            groups.setdefault(key, []).append((message, delivery))

        for key, items in groups.items():
            route = self._routes[key] if key != _EVERY else _Route(_Every, batch=self._every)
            failed = await self._run(route, [d for _, d in items])
            attributes = {"longhaul.event.type": key[0] or "*"}
            _failed.add(len(failed), attributes)
            _handled.add(len(items) - len(failed), attributes)
            for message, delivery in items:
                if delivery.message_id in failed:
                    outcome.retry.append((message["ReceiptHandle"], delivery.receive_count))
                else:
                    outcome.delete.append(message["ReceiptHandle"])
        return outcome

    async def _run(self, route: _Route, deliveries: list[Delivery[Any]]) -> set[str]:
        if route.one is not None:
            failed: set[str] = set()
            for delivery in deliveries:
                with delivery.activate() as span:
                    try:
                        await route.one(delivery)
                    except Exception as exc:
                        span.record_exception(exc)
                        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                        log.exception(
                            "event handler failed", extra={"event_id": delivery.envelope.id}
                        )
                        failed.add(delivery.message_id)
            return failed
        assert route.batch is not None
        links = [
            Link(
                trace.get_current_span(
                    extract({"traceparent": d.envelope.traceparent})
                ).get_span_context()
            )
            for d in deliveries
            if d.envelope.traceparent
        ]
        with tracer().start_as_current_span(
            f"consume {route.model.event_type} batch", kind=SpanKind.CONSUMER, links=links
        ) as span:
            ids = {d.message_id for d in deliveries}
            try:
                result = await route.batch(deliveries)
            except Exception as exc:
                span.record_exception(exc)
                log.exception("batch handler failed", extra={"events": len(deliveries)})
                failed = ids
            else:
                failed = set(result.failed if result else ()) & ids
        return failed


class SqsConsumer:
    """Long-polls one queue and feeds the router, deleting or backing off each message."""

    def __init__(
        self,
        client: Any,
        queue_url: str,
        router: EventRouter,
        *,
        wait_s: int = 20,
        concurrency: int = 2,
        retry_base_s: int = 2,
        retry_max_s: int = 300,
    ) -> None:
        self._sqs = client
        self._queue_url = queue_url
        self._router = router
        self._wait_s = wait_s
        self._concurrency = concurrency
        self._retry_base = retry_base_s
        self._retry_max = retry_max_s
        self._pending: list[dict[str, Any]] = []  # gathered, not yet handed on
        self._timer: asyncio.Task[None] | None = None  # hands them on after the wait
        self._timers: set[asyncio.Task[None]] = set()

    def backoff_s(self, receive_count: int) -> int:
        """Visibility delay before attempt `receive_count + 1`: exponential, full jitter."""
        ceiling = min(self._retry_max, self._retry_base * 2 ** max(0, receive_count - 1))
        return random.randint(max(1, ceiling // 2), max(1, ceiling))

    async def run(self, stop: asyncio.Event) -> None:
        """Poll with `concurrency` loops until `stop` is set."""
        try:
            await asyncio.gather(*(self._poll(stop) for _ in range(self._concurrency)))
        finally:
            await self.close()

    async def feed(self, messages: list[dict[str, Any]]) -> None:
        """Hand received messages on to the router: at once, or, when the router gathers
        more than a receive gives, once `gather` wait or `gather_wait_s` after the first.
        Waits while a full batch is handled, so receiving never outruns handling."""
        if self._router.gather <= 10:
            await self.handle(messages)
            return
        self._pending.extend(messages)
        if len(self._pending) >= self._router.gather:
            await self.flush()
        elif self._timer is None:
            self._timer = asyncio.create_task(self._flush_later())
            self._timers.add(self._timer)
            self._timer.add_done_callback(self._timers.discard)

    async def _flush_later(self) -> None:
        await asyncio.sleep(self._router.gather_wait_s)
        self._timer = None  # from here on a flush does not cancel this task
        try:
            await self.flush()
        except Exception:  # unsettled messages reappear by their visibility timeout
            log.exception("settling gathered messages failed")

    async def flush(self) -> None:
        """Hand on every gathered message now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        messages, self._pending = self._pending, []
        if messages:
            await self.handle(messages)

    async def close(self) -> None:
        """Hand on what is gathered and wait for hand-ons in flight (before shutting down)."""
        await self.flush()
        if self._timers:
            await asyncio.gather(*self._timers, return_exceptions=True)

    async def _poll(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            receive = asyncio.ensure_future(self._receive())
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({receive, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not receive.done():
                receive.cancel()  # nothing received yet, or returned to the queue by timeout
                break
            try:
                messages = receive.result()
            except Exception as exc:  # the queue or the endpoint is unavailable
                failures += 1
                delay = min(30.0, 0.5 * 2 ** min(failures, 6))
                log.warning("receive failed; retrying in %.1fs: %s", delay, exc)
                await asyncio.sleep(delay)
                continue
            failures = 0
            if messages:
                try:
                    await self.feed(messages)
                except Exception:  # settling failed; unsettled messages reappear by timeout
                    log.exception("settling a receive failed", extra={"messages": len(messages)})

    async def _receive(self) -> list[dict[str, Any]]:
        response = await self._sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=self._wait_s,
            AttributeNames=["ApproximateReceiveCount"],
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        return messages

    async def handle(self, messages: list[dict[str, Any]]) -> Outcome:
        """Dispatch one receive and settle every message: delete or back off."""
        outcome = await self._router.dispatch(messages)
        deletes = [{"Id": str(i), "ReceiptHandle": r} for i, r in enumerate(outcome.delete)]
        retries = [
            {"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": self.backoff_s(n)}
            for i, (r, n) in enumerate(outcome.retry)
        ]
        calls = [  # SQS takes at most 10 entries a batch call
            self._sqs.delete_message_batch(QueueUrl=self._queue_url, Entries=deletes[i : i + 10])
            for i in range(0, len(deletes), 10)
        ]
        calls += [
            self._sqs.change_message_visibility_batch(
                QueueUrl=self._queue_url, Entries=retries[i : i + 10]
            )
            for i in range(0, len(retries), 10)
        ]
        for answer in await asyncio.gather(*calls):
            if answer.get("Failed"):
                log.warning(
                    "messages not settled; they will be redelivered",
                    extra={"failed": answer["Failed"]},
                )
        return outcome

    async def send(self, envelope: Envelope, *, delay_s: int = 0) -> str:
        """Send `envelope` straight to this queue, carrying its context as message attributes."""
        response = await self._sqs.send_message(
            QueueUrl=self._queue_url,
            MessageBody=envelope.model_dump_json(),
            MessageAttributes=message_attributes(envelope),
            DelaySeconds=delay_s,
        )
        return str(response["MessageId"])
