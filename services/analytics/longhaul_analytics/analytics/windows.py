"""Windows: every tumbling and sliding window is a run of one-minute panes, so an event is
stored once per metric (in its pane) and each window is read back from its panes.
Sessions are cut from a group's event times with a gap."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "HOUR_MS",
    "PANE_MS",
    "SESSION",
    "WINDOWS",
    "WindowSpec",
    "pane_of",
    "sessions",
    "window_spec",
]

PANE_MS = 60_000
MINUTE = 60_000
HOUR_MS = 3_600_000
SESSION = "session"


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """A tumbling (size == slide) or sliding window, both whole minutes."""

    name: str
    size_ms: int
    slide_ms: int

    def starts_of(self, time_ms: int) -> list[int]:
        """The starts of every window of this kind that holds `time_ms`."""
        last = time_ms - time_ms % self.slide_ms
        return list(range(last - self.size_ms + self.slide_ms, last + 1, self.slide_ms))

    def panes(self, start: int) -> range:
        """The pane starts of the window beginning at `start`."""
        return range(start, start + self.size_ms, PANE_MS)

    def end(self, start: int) -> int:
        return start + self.size_ms

    def starts_between(self, start: int, end: int) -> range:
        """The window starts in [start, end)."""
        first = start - start % self.slide_ms
        if first < start:
            first += self.slide_ms
        return range(first, end, self.slide_ms)


WINDOWS: dict[str, WindowSpec] = {
    spec.name: spec
    for spec in (
        WindowSpec("1m", MINUTE, MINUTE),
        WindowSpec("1h", 60 * MINUTE, 60 * MINUTE),
        WindowSpec("1d", 1440 * MINUTE, 1440 * MINUTE),
        WindowSpec("5m/1m", 5 * MINUTE, MINUTE),  # sliding: 5 minutes, every minute
    )
}


def window_spec(name: str) -> WindowSpec:
    """The window called `name`; KeyError when there is none."""
    return WINDOWS[name]


def pane_of(time_ms: int) -> int:
    """The start of the one-minute pane that holds `time_ms`."""
    return time_ms - time_ms % PANE_MS


def sessions(times: Iterable[int], gap_ms: int) -> list[tuple[int, int]]:
    """Maximal runs of event times where each follows the previous by at most `gap_ms`:
    (first event time, last event time) of each, in order."""
    ordered: Sequence[int] = sorted(times)
    runs: list[tuple[int, int]] = []
    for time_ms in ordered:
        if runs and time_ms - runs[-1][1] <= gap_ms:
            runs[-1] = (runs[-1][0], time_ms)
        else:
            runs.append((time_ms, time_ms))
    return runs
