"""The router settles every message, whatever its body: one bad message never stops it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from longhaul.events import Delivery, EventRouter
from tests.support.echo.events import MessageSent


def _message(body: str, n: int) -> dict[str, object]:
    return {"MessageId": f"m{n}", "ReceiptHandle": f"r{n}", "Body": body, "Attributes": {}}


async def _ok(delivery: Delivery[MessageSent]) -> None:
    return None


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        '{"a": ' + "1" * 5000 + "}",  # int() refuses numbers this long: ValueError
        "[" * 100_000 + "]" * 100_000,  # nests past the recursion limit
        json.dumps({"type": "echo.message.sent"}),
        json.dumps([1, 2, 3]),
    ],
)
async def test_any_malformed_body_is_kept_for_the_dlq_and_its_neighbour_handled(body: str) -> None:
    router = EventRouter()
    router.on(MessageSent)(_ok)
    good = {
        "id": "e1",
        "type": "echo.message.sent",
        "version": 1,
        "source": "longhaul.echo",
        "time": "2026-11-25T10:00:00+00:00",
        "correlation_id": "c",
        "data": {"text": "fine"},
    }
    outcome = await router.dispatch([_message(body, 1), _message(json.dumps(good), 2)])
    assert outcome.retry == [("r1", 1)]
    assert outcome.delete == ["r2"]
    assert router.unrouted["malformed"] == 1


async def test_on_every_takes_every_decoded_envelope_no_typed_route_takes() -> None:
    """A catch-all consumer (analytics) gets unknown types, unknown versions and registered
    types alike as raw data; a typed route still takes its own; a malformed body stays
    unrouted and kept."""
    router = EventRouter()
    typed: list[str] = []
    every: list[tuple[str, int, dict[str, object]]] = []

    async def one(delivery: Delivery[MessageSent]) -> None:
        typed.append(delivery.envelope.id)

    router.on(MessageSent)(one)

    @router.on_every()
    async def take(deliveries: list[Delivery[Any]]) -> None:
        every.extend((d.envelope.type, d.envelope.version, d.event) for d in deliveries)

    def envelope(id_: str, type_: str, version: int, data: dict[str, object] | None = None) -> str:
        return json.dumps(
            {
                "id": id_,
                "type": type_,
                "version": version,
                "source": "longhaul.x",
                "time": "2026-11-25T10:00:00+00:00",
                "correlation_id": "c",
                "data": data or {"owner": "u1", "n": 1},
            }
        )

    outcome = await router.dispatch(
        [
            _message(envelope("a", "echo.message.sent", 1, {"text": "hi"}), 1),
            _message(envelope("b", "nobody.knows.this", 1), 2),
            _message(envelope("c", "echo.message.sent", 9), 3),
            _message("not json", 4),
        ]
    )
    assert typed == ["a"]
    assert ("nobody.knows.this", 1, {"owner": "u1", "n": 1}) in every
    assert ("echo.message.sent", 9, {"owner": "u1", "n": 1}) in every
    assert outcome.retry == [("r4", 1)]
    assert sorted(outcome.delete) == ["r1", "r2", "r3"]
    with pytest.raises(ValueError, match="already has"):
        router.on_every()(take)
