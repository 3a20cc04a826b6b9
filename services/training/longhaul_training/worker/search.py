"""A sweep's search strategies: the parameters of trial n, given the trials told so far.

Every strategy is a plain function of (space, seed, n, told trials), so a sweep resumed on
another worker asks exactly what it would have asked: grid takes the n-th point; random
draws from a generator seeded with (seed, n); TPE replays the told trials into a fresh
in-memory Optuna study whose sampler is seeded with (seed + n) and asks it once. The
sweep's checkpoint holds every trial asked and told, which is the whole sampler state.
"""

from __future__ import annotations

import itertools
import math
import statistics
from typing import Any

import numpy as np

from longhaul_training.models import ChoiceParam, FloatParam, IntParam, SearchParam

__all__ = ["ask", "grid_size", "medians"]

Scalar = bool | int | float | str


def _grid_values(param: SearchParam) -> list[Scalar]:
    if isinstance(param, ChoiceParam):
        return list(param.choices)
    if isinstance(param, IntParam):
        return list(range(param.low, param.high + 1, param.step))
    if param.log:
        return [float(v) for v in np.geomspace(param.low, param.high, param.points)]
    return [float(v) for v in np.linspace(param.low, param.high, param.points)]


def grid_size(space: dict[str, SearchParam]) -> int:
    """How many points the grid of `space` has."""
    return math.prod(len(_grid_values(p)) for p in space.values())


def _grid(space: dict[str, SearchParam], n: int) -> dict[str, Scalar] | None:
    names = sorted(space)
    for index, values in enumerate(itertools.product(*(_grid_values(space[k]) for k in names))):
        if index == n:
            return dict(zip(names, values, strict=True))
    return None


def _random(space: dict[str, SearchParam], seed: int, n: int) -> dict[str, Scalar]:
    rng = np.random.default_rng([seed, n])
    params: dict[str, Scalar] = {}
    for name in sorted(space):
        param = space[name]
        if isinstance(param, ChoiceParam):
            params[name] = param.choices[int(rng.integers(len(param.choices)))]
        elif isinstance(param, IntParam):
            if param.log:
                drawn = math.exp(rng.uniform(math.log(max(param.low, 1)), math.log(param.high)))
                params[name] = min(param.high, max(param.low, round(drawn)))
            else:
                steps = (param.high - param.low) // param.step
                params[name] = param.low + param.step * int(rng.integers(steps + 1))
        elif param.log:
            params[name] = float(math.exp(rng.uniform(math.log(param.low), math.log(param.high))))
        else:
            params[name] = float(rng.uniform(param.low, param.high))
    return params


def _distribution(param: SearchParam) -> Any:
    import optuna

    if isinstance(param, ChoiceParam):
        return optuna.distributions.CategoricalDistribution(param.choices)
    if isinstance(param, IntParam):
        step = 1 if param.log else param.step
        return optuna.distributions.IntDistribution(param.low, param.high, log=param.log, step=step)
    assert isinstance(param, FloatParam)
    return optuna.distributions.FloatDistribution(param.low, param.high, log=param.log)


def _tpe(
    space: dict[str, SearchParam],
    seed: int,
    n: int,
    told: list[dict[str, Any]],
    maximize: bool,
) -> dict[str, Scalar]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions = {name: _distribution(space[name]) for name in sorted(space)}
    study = optuna.create_study(
        direction="maximize" if maximize else "minimize",
        sampler=optuna.samplers.TPESampler(seed=seed + n),
    )
    for trial in sorted(told, key=lambda t: int(t["n"])):
        if trial.get("value") is None:
            continue
        study.add_trial(
            optuna.trial.create_trial(
                params=trial["params"], distributions=distributions, value=float(trial["value"])
            )
        )
    asked = study.ask(distributions)
    return {name: asked.params[name] for name in sorted(space)}


def ask(
    strategy: str,
    space: dict[str, SearchParam],
    seed: int,
    n: int,
    told: list[dict[str, Any]],
    maximize: bool,
) -> dict[str, Scalar] | None:
    """The parameters of trial `n` (None once a grid is exhausted)."""
    if strategy == "grid":
        return _grid(space, n)
    if strategy == "random":
        return _random(space, seed, n)
    return _tpe(space, seed, n, told, maximize)


def medians(curves: list[dict[int, float]], min_trials: int) -> dict[int, float]:
    """The median rule's bar: per step, the median of the completed trials' values at that
    step, where at least `min_trials` of them reached it."""
    steps: dict[int, list[float]] = {}
    for curve in curves:
        for step, value in curve.items():
            steps.setdefault(int(step), []).append(float(value))
    return {s: statistics.median(v) for s, v in steps.items() if len(v) >= min_trials}
