"""Events: the envelope, the registry of event models, publishing and consuming."""

from longhaul.events.aws import S3ObjectCreated
from longhaul.events.consumer import (
    BatchResult,
    Delivery,
    EventRouter,
    Outcome,
    SqsConsumer,
    message_attributes,
)
from longhaul.events.envelope import Envelope
from longhaul.events.exceptions import (
    EventError,
    EventTooLarge,
    InvalidEvent,
    PublishError,
    UnknownEventType,
    UnknownEventVersion,
)
from longhaul.events.publisher import EventPublisher, envelope_for
from longhaul.events.registry import Event, event, lookup, registered

__all__ = [
    "BatchResult",
    "Delivery",
    "Envelope",
    "Event",
    "EventError",
    "EventPublisher",
    "EventRouter",
    "EventTooLarge",
    "InvalidEvent",
    "Outcome",
    "PublishError",
    "S3ObjectCreated",
    "SqsConsumer",
    "UnknownEventType",
    "UnknownEventVersion",
    "envelope_for",
    "event",
    "lookup",
    "message_attributes",
    "registered",
]
