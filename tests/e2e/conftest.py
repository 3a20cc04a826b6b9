"""Fixtures of the end-to-end tests.

One `longhaul dev` serves the tests that only use it (`shared_runner`) and then the one test
that ends it with Ctrl-C (`runner`): `pytest_collection_modifyitems` runs them one after the
other, the ending test last, so the platform starts once for all of them. test_dev_ports
starts its own runners: it kills one with -9 and needs another's port taken."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.dev import Runner
from tests.support.media import MediaWorker
from tests.support.moto import free_port
from tests.support.workers import Worker

SHARING = "shared_runner"  # tests that leave the shared runner running
ENDING = "runner"  # the test that ends it
HERE = Path(__file__).resolve().parent


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


def _on_shared_runner(item: pytest.Item) -> bool:
    """A test of this folder that takes the shared runner (the hook sees every test)."""
    names = getattr(item, "fixturenames", ())
    return HERE in item.path.parents and (SHARING in names or ENDING in names)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests on the shared runner run one after the other where the ending test was
    collected, those that leave it running first."""
    users = [item for item in items if _on_shared_runner(item)]
    ending = [item for item in users if ENDING in item.fixturenames]  # type: ignore[attr-defined]
    if not ending:
        return
    anchor = items.index(ending[0])
    before = sum(1 for item in items[:anchor] if not _on_shared_runner(item))
    rest = [item for item in items if not _on_shared_runner(item)]
    ordered = [item for item in users if item not in ending] + ending
    items[:] = rest[:before] + ordered + rest[before:]


@pytest.fixture(scope="session")
def _dev_runner() -> Iterator[Runner]:
    """`longhaul dev` with the echo service beside the installed ones, started once."""
    runner = Runner(free_port())
    yield runner
    runner.kill()


@pytest.fixture
def shared_runner(_dev_runner: Runner, request: pytest.FixtureRequest) -> Iterator[Runner]:
    """The shared `longhaul dev`, left running for the next test on it; killed after the
    last test on it (when the ending test is not selected), whatever happened."""
    assert _dev_runner.process.poll() is None, "the shared dev runner has ended"
    yield _dev_runner
    items = request.session.items
    later = items[items.index(request.node) + 1 :] if request.node in items else []
    if not any(_on_shared_runner(item) for item in later):
        _dev_runner.kill()


@pytest.fixture
def runner(_dev_runner: Runner) -> Iterator[Runner]:
    """The shared `longhaul dev`, for the test that ends it; killed at its end, whatever
    happened."""
    assert _dev_runner.process.poll() is None, "the shared dev runner has ended"
    yield _dev_runner
    _dev_runner.kill()
