"""A small CloudWatch alarm evaluator for synthesized alarm definitions: the metric math the
stacks use (arithmetic, comparisons, AND/OR, IF, FILL) over one-minute datapoints, then the
alarm's threshold, M out of N evaluation and missing-data treatment.

It evaluates what the template says, so a test can feed a synthetic minute-by-minute story
(one request a minute, all 500s; one slow request) and read the state CloudWatch would reach.
Only what the stacks use is implemented; anything else fails loudly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Series", "evaluate", "expression_series", "series_of"]

Series = list[float | None]
# Keyed by (metric name, statistic), or by metric name alone when the statistic does not matter.
Data = Mapping[Any, Sequence[float | None]]

_TOKEN = re.compile(r"\s*(>=|<=|==|!=|[-+*/(),<>]|\d+(?:\.\d+)?|[A-Za-z_][A-Za-z0-9_]*)")
_FUNCTIONS = {"IF", "FILL"}
_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


@dataclass(frozen=True)
class _Node:
    kind: str  # "num", "ref", "op", "call"
    value: str
    args: tuple[_Node, ...] = ()


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.at = 0

    def parse(self) -> _Node:
        node = self._or()
        if self.at != len(self.tokens):
            raise ValueError(f"unexpected {self.tokens[self.at]!r}")
        return node

    def _peek(self) -> str | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def _take(self, expected: str | None = None) -> str:
        token = self.tokens[self.at]
        if expected is not None and token != expected:
            raise ValueError(f"expected {expected!r}, got {token!r}")
        self.at += 1
        return token

    def _binary(self, operators: set[str], lower: Callable[[], _Node]) -> _Node:
        node = lower()
        while self._peek() in operators:
            operator = self._take()
            node = _Node("op", operator, (node, lower()))
        return node

    def _or(self) -> _Node:
        return self._binary({"OR"}, self._and)

    def _and(self) -> _Node:
        return self._binary({"AND"}, self._comparison)

    def _comparison(self) -> _Node:
        return self._binary(set(_COMPARISONS), self._sum)

    def _sum(self) -> _Node:
        return self._binary({"+", "-"}, self._product)

    def _product(self) -> _Node:
        return self._binary({"*", "/"}, self._unary)

    def _unary(self) -> _Node:
        if self._peek() == "-":
            self._take()
            return _Node("op", "neg", (self._unary(),))
        return self._atom()

    def _atom(self) -> _Node:
        token = self._take()
        if token == "(":
            node = self._or()
            self._take(")")
            return node
        if re.fullmatch(r"\d+(?:\.\d+)?", token):
            return _Node("num", token)
        if token in _FUNCTIONS:
            self._take("(")
            args = [self._or()]
            while self._peek() == ",":
                self._take()
                args.append(self._or())
            self._take(")")
            return _Node("call", token, tuple(args))
        if token.upper() in _FUNCTIONS | {"AND", "OR"}:
            raise ValueError(f"metric math keyword in the wrong case: {token}")
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", token):
            return _Node("ref", token)
        raise ValueError(f"unexpected {token!r}")


def _tokens(text: str) -> list[str]:
    found: list[str] = []
    at = 0
    while at < len(text.rstrip()):
        match = _TOKEN.match(text, at)
        if match is None:
            raise ValueError(f"cannot read {text[at:]!r} in metric math")
        found.append(match.group(1))
        at = match.end()
    return found


def _evaluate(node: _Node, series: Mapping[str, Series], length: int) -> Series:
    if node.kind == "num":
        return [float(node.value)] * length
    if node.kind == "ref":
        return list(series[node.value])
    args = [_evaluate(arg, series, length) for arg in node.args]
    if node.kind == "call" and node.value == "FILL":
        values, filler = args
        return [v if v is not None else f for v, f in zip(values, filler, strict=True)]
    if node.kind == "call" and node.value == "IF":
        condition, then, otherwise = args
        return [
            None if c is None else (t if c != 0 else o)
            for c, t, o in zip(condition, then, otherwise, strict=True)
        ]
    if node.value == "neg":
        return [None if v is None else -v for v in args[0]]
    left, right = args
    out: Series = []
    for a, b in zip(left, right, strict=True):
        if a is None or b is None:
            out.append(None)
        elif node.value == "AND":
            out.append(float(a != 0 and b != 0))
        elif node.value == "OR":
            out.append(float(a != 0 or b != 0))
        elif node.value in _COMPARISONS:
            out.append(float(_COMPARISONS[node.value](a, b)))
        elif node.value == "/":
            # CloudWatch drops a datapoint divided by zero.
            out.append(None if b == 0 else a / b)
        else:
            out.append({"+": a + b, "-": a - b, "*": a * b}[node.value])
    return out


def series_of(data: Data, name: str, stat: str, length: int) -> Series:
    """The synthetic datapoints of one metric: by (name, statistic), else by name; a metric
    the story leaves out published nothing (every datapoint missing)."""
    values = data.get((name, stat), data.get(name))
    if values is None:
        return [None] * length
    assert len(values) == length, (name, stat)
    return list(values)


def expression_series(metrics: list[dict[str, Any]], data: Data, length: int) -> Series:
    """The series an alarm's `Metrics` list returns (the one query with ReturnData)."""
    series: dict[str, Series] = {}
    for query in metrics:
        if "MetricStat" in query:
            stat = query["MetricStat"]
            assert stat["Period"] == 60, query
            name = stat["Metric"]["MetricName"]
            series[query["Id"]] = series_of(data, name, stat["Stat"], length)
    pending = [q for q in metrics if "Expression" in q]
    while pending:
        for query in list(pending):
            tree = _Parser(query["Expression"]).parse()
            try:
                series[query["Id"]] = _evaluate(tree, series, length)
            except KeyError:
                continue  # depends on an expression not evaluated yet
            pending.remove(query)
    (returned,) = [q for q in metrics if q.get("ReturnData", True)]
    return series[returned["Id"]]


def evaluate(alarm: Mapping[str, Any], data: Data, minutes: int) -> str:
    """The state ('ALARM' or 'OK') the alarm reaches over `minutes` one-minute datapoints:
    ALARM as soon as any window of EvaluationPeriods datapoints holds DatapointsToAlarm
    breaching ones."""
    if "Metrics" in alarm:
        values = expression_series(alarm["Metrics"], data, minutes)
    else:
        assert alarm["Period"] == 60, alarm
        stat = alarm.get("Statistic") or alarm["ExtendedStatistic"]
        values = series_of(data, alarm["MetricName"], stat, minutes)
    threshold = float(alarm["Threshold"])
    compare = {
        "GreaterThanThreshold": _COMPARISONS[">"],
        "GreaterThanOrEqualToThreshold": _COMPARISONS[">="],
        "LessThanThreshold": _COMPARISONS["<"],
        "LessThanOrEqualToThreshold": _COMPARISONS["<="],
    }[alarm["ComparisonOperator"]]
    missing = alarm.get("TreatMissingData", "missing")
    if missing not in ("notBreaching", "breaching"):
        raise NotImplementedError(f"TreatMissingData {missing}")
    breaching = [(missing == "breaching") if v is None else compare(v, threshold) for v in values]
    periods = int(alarm["EvaluationPeriods"])
    needed = int(alarm.get("DatapointsToAlarm", periods))
    for end in range(1, minutes + 1):
        if sum(breaching[max(0, end - periods) : end]) >= needed:
            return "ALARM"
    return "OK"
