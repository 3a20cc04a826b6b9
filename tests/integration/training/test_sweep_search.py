"""A sweep's strategies are plain functions of (space, seed, n, told trials): a sweep
resumed on another worker asks exactly what it would have asked. No AWS here: these are
the parent's decisions that the e2e sweep test runs across killed workers."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter

from longhaul_training.models import SearchParam
from longhaul_training.worker.search import ask, grid_size, medians

pytestmark = pytest.mark.integration

SPACE = TypeAdapter(dict[str, SearchParam]).validate_python(
    {
        "num_leaves": {"type": "int", "low": 4, "high": 64, "step": 4},
        "learning_rate": {"type": "float", "low": 0.01, "high": 0.3, "log": True, "points": 3},
        "boost": {"type": "choice", "choices": ["a", "b"]},
    }
)


def _told(strategy: str, count: int) -> list[dict[str, Any]]:
    """`count` trials asked in turn and told a value that depends on their parameters."""
    told: list[dict[str, Any]] = []
    for n in range(count):
        params = ask(strategy, SPACE, 5, n, told, maximize=False)
        assert params is not None
        told.append({"n": n, "params": params, "value": abs(int(params["num_leaves"]) - 20)})
    return told


def test_tpe_asks_the_same_parameters_when_replayed_from_its_told_trials() -> None:
    told = _told("tpe", 12)
    again = ask("tpe", SPACE, 5, 12, told, maximize=False)
    assert again == ask("tpe", SPACE, 5, 12, [dict(t) for t in told], maximize=False)
    assert again != ask("tpe", SPACE, 6, 12, told, maximize=False)  # the seed matters
    assert [t["params"] for t in _told("tpe", 12)] == [t["params"] for t in told]


def test_random_draws_depend_on_seed_and_trial_only_and_stay_in_bounds() -> None:
    first = [ask("random", SPACE, 5, n, [], maximize=False) for n in range(20)]
    assert first == [
        ask("random", SPACE, 5, n, _told("random", 3), maximize=False) for n in range(20)
    ]
    for params in first:
        assert params is not None
        assert 4 <= int(params["num_leaves"]) <= 64
        assert int(params["num_leaves"]) % 4 == 0
        assert 0.01 <= float(params["learning_rate"]) <= 0.3
        assert params["boost"] in ("a", "b")


def test_grid_visits_every_point_once_then_is_exhausted() -> None:
    size = grid_size(SPACE)
    assert size == 16 * 3 * 2
    points = [ask("grid", SPACE, 0, n, [], maximize=False) for n in range(size)]
    assert len({tuple(sorted(p.items())) for p in points if p is not None}) == size
    assert ask("grid", SPACE, 0, size, [], maximize=False) is None


def test_the_median_rule_bar_needs_enough_completed_trials_per_step() -> None:
    curves = [{1: 0.9, 2: 0.5, 3: 0.4}, {1: 0.7, 2: 0.6}, {1: 0.8, 2: 0.7, 3: 0.2}]
    assert medians(curves, 3) == {1: 0.8, 2: 0.6}
    assert medians(curves, 2) == pytest.approx({1: 0.8, 2: 0.6, 3: 0.3})
