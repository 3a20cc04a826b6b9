"""Errors of the events capability."""

from __future__ import annotations

__all__ = [
    "EventError",
    "EventTooLarge",
    "InvalidEvent",
    "PublishError",
    "UnknownEventType",
    "UnknownEventVersion",
]


class EventError(Exception):
    """Base of every events error."""


class InvalidEvent(EventError):
    """An event failed validation, or its (type, version) is not registered; nothing was sent."""


class EventTooLarge(InvalidEvent):
    """An event is over PutEvents' 256 KB entry limit; nothing was sent."""


class UnknownEventType(EventError):
    """No model is registered for this event type."""


class UnknownEventVersion(EventError):
    """The type is known but this version of it is not."""


class PublishError(EventError):
    """Some entries were still refused by EventBridge after every retry."""

    def __init__(self, message: str, failed: list[tuple[str, str]]) -> None:
        super().__init__(message)
        self.failed = failed  # (event id, error code)
