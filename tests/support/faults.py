"""A client for the emulator's control endpoint: inject faults, read what fired, clear.

Synchronous (urllib), so sync and async tests call it alike; each call is one short
request to the local emulator.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from longhaul.local.emulator import FaultKind

__all__ = ["ControlError", "Faults"]


class ControlError(Exception):
    """The control endpoint refused a request (a rule it could not read, say)."""


class Faults:
    """The fault rules and settings of one emulator."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint.rstrip("/")

    def inject(
        self,
        service: str,
        fault: FaultKind,
        *,
        operation: str | None = None,
        match: str | None = None,
        status: int | None = None,
        seconds: float | None = None,
        probability: float | None = None,
        times: int | None = None,
        after: int | None = None,
        code: str | None = None,
        message: str | None = None,
    ) -> int:
        """Arm one rule; its id (see docs/local-platform.md for what each field does)."""
        rule: dict[str, Any] = {"service": service, "fault": fault}
        optional = {
            "operation": operation,
            "match": match,
            "status": status,
            "seconds": seconds,
            "probability": probability,
            "times": times,
            "after": after,
            "code": code,
            "message": message,
        }
        rule.update({name: value for name, value in optional.items() if value is not None})
        ids: list[int] = self._request("POST", "/_longhaul/faults", [rule])["ids"]
        return ids[0]

    def clear(self) -> None:
        """Drop every rule and release every held (hung) request."""
        self._request("DELETE", "/_longhaul/faults")

    def rules(self) -> list[dict[str, Any]]:
        """The rules in force, each with `id`, its fields, `matched` and `fired`."""
        rules: list[dict[str, Any]] = self._request("GET", "/_longhaul/faults")["rules"]
        return rules

    def rule(self, rule_id: int) -> dict[str, Any]:
        """One rule in force, by id."""
        return next(rule for rule in self.rules() if rule["id"] == rule_id)

    def fired(self, rule_id: int) -> int:
        """How many times the rule applied its fault."""
        return int(self.rule(rule_id)["fired"])

    def matched(self, rule_id: int) -> int:
        """How many calls the rule matched (fired or not)."""
        return int(self.rule(rule_id)["matched"])

    def holding(self) -> int:
        """How many requests a hang holds right now."""
        return int(self._request("GET", "/_longhaul/faults")["holding"])

    def set_visibility_cap(self, seconds: float | None) -> float:
        """Set SQS's cap on a received message's visibility (None: the emulator's default);
        the cap now in force."""
        settings = self._request("PUT", "/_longhaul/settings", {"visibility_cap_s": seconds})
        return float(settings["visibility_cap_s"])

    def _request(self, method: str, path: str, document: object = None) -> Any:
        data = None if document is None else json.dumps(document).encode()
        request = urllib.request.Request(  # noqa: S310 - the local emulator's http URL
            self.endpoint + path, data=data, method=method
        )
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                body = response.read()
        except urllib.error.HTTPError as exc:
            with exc:  # closes its connection
                reason = exc.read().decode(errors="replace")
            raise ControlError(f"{method} {path}: {exc.code} {reason}") from None
        return json.loads(body) if body else None
