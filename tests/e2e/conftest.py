"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.dev import Runner
from tests.support.media import MediaWorker
from tests.support.moto import free_port
from tests.support.processes import kill_tree
from tests.support.workers import Worker


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    """Test-service worker processes a test starts; killed at its end, whatever happened."""
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop()


@pytest.fixture
def media_workers() -> Iterator[list[MediaWorker]]:
    """Media worker processes a test starts; killed at its end, whatever happened."""
    started: list[MediaWorker] = []
    yield started
    for worker in started:
        worker.stop()


@pytest.fixture
def runner() -> Iterator[Runner]:
    """`longhaul dev` with the echo service beside the installed ones; killed at the end."""
    runner = Runner(free_port())
    yield runner
    if runner.process.poll() is None:
        # The runner and what it started (moto, every service's roles), found before the
        # kill: a failed test leaves none of them holding the services' ports.
        kill_tree(runner.process.pid)
        runner.process.wait()
    runner.reader.join(timeout=10)
    assert runner.process.stdout is not None
    runner.process.stdout.close()
