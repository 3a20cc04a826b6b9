"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.media import MediaWorker


@pytest.fixture
def media_workers() -> Iterator[list[MediaWorker]]:
    """Media worker processes a test starts; killed at its end, whatever happened."""
    started: list[MediaWorker] = []
    yield started
    for worker in started:
        worker.stop()
