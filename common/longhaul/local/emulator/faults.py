"""Fault rules: which calls fail, how, how often; and what each rule matched and fired."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from longhaul.local.emulator.calls import AwsCall

__all__ = ["HANG_LIMIT_S", "FaultBook", "FaultKind", "FaultRule"]

FaultKind = Literal["throttle", "error", "latency", "reset", "hang"]
# A hang without `seconds` lasts until the rules are cleared, but never longer than this:
# a test that forgets to clear must not pin server threads for the rest of the session.
HANG_LIMIT_S = 300.0


class FaultRule(BaseModel):
    """One rule, as posted to the control endpoint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    service: str = Field(description='"dynamodb", "sqs", "events", "s3", ... or "*"')
    fault: FaultKind
    operation: str | None = Field(None, description="e.g. UpdateItem; any when absent")
    match: str | None = Field(None, description="a substring of the path, query or body")
    status: Literal[500, 503] = Field(500, description="the status of an `error`")
    seconds: float | None = Field(None, ge=0, le=HANG_LIMIT_S)
    probability: float = Field(1.0, ge=0, le=1)
    times: int | None = Field(None, ge=1, description="fire at most this many times")
    after: int = Field(0, ge=0, description="let this many matching calls through first")
    code: str | None = Field(None, description="an error code other than the service's own")
    message: str | None = None

    @model_validator(mode="after")
    def _latency_has_seconds(self) -> FaultRule:
        if self.fault == "latency" and self.seconds is None:
            raise ValueError("a latency fault needs `seconds`")
        return self

    def matches(self, call: AwsCall) -> bool:
        """Whether `call` is one this rule is about."""
        return (
            bool(call.service)  # moto's own API and the JWKS are not AWS calls
            and self.service in {"*", call.service}
            and (self.operation is None or self.operation == call.operation)
            and (self.match is None or self.match in call.text)
        )


@dataclass
class _Armed:
    id: int
    rule: FaultRule
    matched: int = 0
    fired: int = 0


class FaultBook:
    """The rules in force, their counts, and the gate that held (hung) requests wait on."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rules: list[_Armed] = []
        self._next_id = 1
        self._lock = threading.Lock()
        self._cleared = threading.Event()
        self._holding = 0
        self._rng = rng or random.Random()

    def add(self, rules: list[FaultRule]) -> list[int]:
        """Arm `rules` after those in force; their ids."""
        with self._lock:
            armed = [_Armed(self._next_id + i, rule) for i, rule in enumerate(rules)]
            self._next_id += len(armed)
            self._rules.extend(armed)
            return [a.id for a in armed]

    def clear(self) -> None:
        """Drop every rule and let every held request go."""
        with self._lock:
            self._rules.clear()
            self._cleared.set()
            self._cleared = threading.Event()

    def pick(self, call: AwsCall) -> FaultRule | None:
        """The fault to apply to `call`: the first rule, in order, that fires for it."""
        with self._lock:
            for armed in self._rules:
                rule = armed.rule
                if not rule.matches(call):
                    continue
                armed.matched += 1
                if armed.matched <= rule.after:
                    continue
                if rule.times is not None and armed.fired >= rule.times:
                    continue
                if self._rng.random() >= rule.probability:
                    continue
                armed.fired += 1
                return rule
        return None

    def hold(self, seconds: float | None) -> None:
        """Block the calling request for `seconds`, or until the rules are cleared."""
        with self._lock:
            cleared = self._cleared
            self._holding += 1
        try:
            cleared.wait(HANG_LIMIT_S if seconds is None else seconds)
        finally:
            with self._lock:
                self._holding -= 1

    def report(self) -> dict[str, Any]:
        """The rules in force with what each matched and fired, and the requests held now."""
        with self._lock:
            rules = [
                {"id": a.id, **a.rule.model_dump(), "matched": a.matched, "fired": a.fired}
                for a in self._rules
            ]
            return {"rules": rules, "holding": self._holding}
