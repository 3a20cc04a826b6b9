"""PutEvents' limits and partial failures.

moto never throttles or refuses part of a batch, so these tests use a client that does: it
stands in for EventBridge only where EventBridge's own behaviour cannot be provoked.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from longhaul.events import Envelope, EventPublisher, EventTooLarge, InvalidEvent, PublishError
from longhaul.events.publisher import MAX_BATCH_BYTES
from tests.support.echo.events import MessageSent


class RefusingEventBridge:
    """Records each PutEvents call; refuses the entries whose text is in `refuse` N times."""

    def __init__(self, refuse: dict[str, int] | None = None) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self.refuse = dict(refuse or {})

    async def put_events(self, *, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(Entries)
        results = []
        for entry in Entries:
            text = json.loads(entry["Detail"])["data"]["text"]
            if self.refuse.get(text, 0) > 0:
                self.refuse[text] -= 1
                results.append({"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"})
            else:
                results.append({"EventId": text})
        failed = sum("ErrorCode" in r for r in results)
        return {"FailedEntryCount": failed, "Entries": results}


def _publisher(client: RefusingEventBridge, attempts: int = 4) -> EventPublisher:
    return EventPublisher(
        client, bus_name="bus", source="longhaul.echo", max_attempts=attempts, base_delay_s=0.001
    )


def _texts(call: list[dict[str, Any]]) -> list[str]:
    return [json.loads(e["Detail"])["data"]["text"] for e in call]


async def test_batches_hold_at_most_ten_entries() -> None:
    client = RefusingEventBridge()
    await _publisher(client).publish(*(MessageSent(text=f"m{i}") for i in range(23)))
    assert [len(call) for call in client.calls] == [10, 10, 3]


async def test_batches_hold_at_most_256_kb() -> None:
    client = RefusingEventBridge()
    big = "x" * 100_000
    await _publisher(client).publish(*(MessageSent(text=f"{i}{big}") for i in range(5)))
    assert [len(call) for call in client.calls] == [2, 2, 1]
    for call in client.calls:
        size = sum(len(e["Detail"]) + len(e["Source"]) + len(e["DetailType"]) + 14 for e in call)
        assert size <= MAX_BATCH_BYTES


async def test_only_refused_entries_are_retried() -> None:
    client = RefusingEventBridge(refuse={"m2": 2, "m5": 1})
    envelopes = await _publisher(client).publish(*(MessageSent(text=f"m{i}") for i in range(7)))
    assert len(envelopes) == 7
    assert [_texts(call) for call in client.calls] == [
        ["m0", "m1", "m2", "m3", "m4", "m5", "m6"],
        ["m2", "m5"],
        ["m2"],
    ]


async def test_entries_refused_past_the_last_attempt_are_reported() -> None:
    client = RefusingEventBridge(refuse={"m1": 99})
    with pytest.raises(PublishError) as raised:
        await _publisher(client, attempts=3).publish(MessageSent(text="m0"), MessageSent(text="m1"))
    assert len(client.calls) == 3
    [(event_id, code)] = raised.value.failed
    assert code == "ThrottlingException"
    assert event_id


async def test_event_over_256_kb_is_refused_before_any_call() -> None:
    client = RefusingEventBridge()
    with pytest.raises(EventTooLarge, match="store the payload in S3"):
        await _publisher(client).publish(MessageSent(text="ok"), MessageSent(text="x" * 300_000))
    assert client.calls == []


async def test_unregistered_event_is_refused() -> None:
    from longhaul.events import Event

    class Stray(Event):
        note: str

    client = RefusingEventBridge()
    with pytest.raises(InvalidEvent, match="not a registered event"):
        await _publisher(client).publish(Stray(note="x"))
    assert client.calls == []


async def test_each_entry_is_an_envelope_with_the_events_type() -> None:
    client = RefusingEventBridge()
    await _publisher(client).publish(MessageSent(text="hi"))
    [[entry]] = client.calls
    envelope = Envelope.model_validate_json(entry["Detail"])
    assert (entry["DetailType"], entry["Source"], entry["EventBusName"]) == (
        "echo.message.sent",
        "longhaul.echo",
        "bus",
    )
    assert (envelope.type, envelope.version, envelope.data) == (
        "echo.message.sent",
        1,
        {"text": "hi", "fail": False},
    )
    assert envelope.correlation_id
    assert envelope.traceparent
