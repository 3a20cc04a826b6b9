"""The router settles every message, whatever its body: one bad message never stops it."""

from __future__ import annotations

import json

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
