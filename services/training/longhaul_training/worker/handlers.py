"""The training service's event handlers."""

from __future__ import annotations

from longhaul.events import EventRouter

__all__ = ["events"]

events = EventRouter()
