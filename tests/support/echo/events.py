"""The echo service's events."""

from longhaul.events import Event, event


@event("echo.message.sent", 1)
class MessageSent(Event):
    """Someone said something."""

    text: str
    fail: bool = False
