"""The echo service's events."""

from longhaul.events import Event, event
from longhaul.jobs.events import register_job_facts


@event("echo.message.sent", 1)
class MessageSent(Event):
    """Someone said something."""

    text: str
    fail: bool = False


JOB_FACTS = register_job_facts("echo")
