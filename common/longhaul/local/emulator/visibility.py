"""SQS's cap on a received message's visibility: 12 hours from its receipt, in total.

SQS refuses a ChangeMessageVisibility whose new timeout would keep the message invisible
past that point. moto only checks against the message's send time with a fixed 12 hours,
so a heartbeat that extends a lease forever would pass locally and fail on AWS.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable

__all__ = ["DEFAULT_CAP_S", "VisibilityCap"]

DEFAULT_CAP_S = 43200.0
# Receipts older than the cap can no longer be extended, so they are forgotten this long
# after it (then moto answers for them), which bounds the memory of a long session.
_FORGET_AFTER_S = 60.0


class VisibilityCap:
    """Receipt times by receipt handle, and the check SQS makes on every extension."""

    def __init__(self, cap_s: float = DEFAULT_CAP_S) -> None:
        self.cap_s = cap_s
        self._received: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def received(self, handles: Iterable[str], at: float | None = None) -> None:
        """Note that messages were received now (or `at`) under `handles`."""
        at = time.monotonic() if at is None else at
        with self._lock:
            for handle in handles:
                self._received[handle] = at
            horizon = at - self.cap_s - _FORGET_AFTER_S
            while self._received and next(iter(self._received.values())) < horizon:
                self._received.popitem(last=False)

    def refusal(self, handle: str, timeout: int, now: float | None = None) -> str | None:
        """SQS's error message if setting `timeout` on `handle` now passes the cap, else None."""
        now = time.monotonic() if now is None else now
        with self._lock:
            received = self._received.get(handle)
        # Whole seconds, as SQS counts visibility: the longest timeout is still allowed
        # in the second of the receipt.
        if received is None or int(now - received) + timeout <= self.cap_s:
            return None
        limit = int(self.cap_s) if float(self.cap_s).is_integer() else self.cap_s
        return (
            f"Value {timeout} for parameter VisibilityTimeout is invalid. Reason: Total "
            f"VisibilityTimeout for the message is beyond the limit [{limit} seconds]"
        )

    def forget(self) -> None:
        """Forget every receipt (moto's state was reset)."""
        with self._lock:
            self._received.clear()
