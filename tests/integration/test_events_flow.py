"""Events through real EventBridge and SQS on moto: publish -> rule -> queue -> consumer."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from longhaul.aws.clients import AwsClients
from longhaul.events import (
    BatchResult,
    Delivery,
    EventPublisher,
    EventRouter,
    InvalidEvent,
    SqsConsumer,
)
from longhaul.observability import context, tracer
from longhaul.spec import ResourceNames
from tests.conftest import LogCapture, Platform
from tests.support.echo.events import MessageSent
from tests.support.echo.service import events as echo_router
from tests.support.echo.spec import SPEC as ECHO


async def _queue(aws: AwsClients, platform: Platform) -> tuple[Any, str]:
    sqs = await aws.get("sqs")
    name = ResourceNames.of(ECHO, platform.env).queue
    return sqs, (await sqs.get_queue_url(QueueName=name))["QueueUrl"]


async def _receive(sqs: Any, url: str, want: int, wait_s: int = 5) -> list[dict[str, Any]]:
    """Up to `want` messages, long-polling until they are there or the queue stays empty."""
    got: list[dict[str, Any]] = []
    while len(got) < want:
        response = await sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait_s,
            AttributeNames=["ApproximateReceiveCount"],
            MessageAttributeNames=["All"],
        )
        if not response.get("Messages"):
            break
        got += response["Messages"]
    return got


async def _publisher(aws: AwsClients, platform: Platform) -> EventPublisher:
    return EventPublisher(
        await aws.get("events"),
        bus_name=ResourceNames.of(ECHO, platform.env).bus,
        source="longhaul.echo",
    )


async def test_event_reaches_consumer_intact_with_correlation_and_trace(
    aws: AwsClients, platform: Platform, json_logs: LogCapture, spans: InMemorySpanExporter
) -> None:
    publisher = await _publisher(aws, platform)
    with (
        context.bind(correlation="req-42"),
        tracer().start_as_current_span("POST /messages", kind=SpanKind.SERVER) as request_span,
    ):
        [sent] = await publisher.publish(MessageSent(text="hello"))
    trace_id = request_span.get_span_context().trace_id

    sqs, url = await _queue(aws, platform)
    consumer = SqsConsumer(sqs, url, echo_router)
    [message] = await _receive(sqs, url, want=1)
    outcome = await consumer.handle([message])

    assert len(outcome.delete) == 1
    assert outcome.retry == []
    received = json.loads(message["Body"])["detail"]
    assert received == json.loads(sent.model_dump_json()), "the envelope arrives unchanged"
    assert sent.correlation_id == "req-42"

    [line] = [r for r in json_logs.records if r["message"] == "echo received"]
    assert line["correlation_id"] == "req-42"
    assert line["text"] == "hello"
    assert line["trace_id"] == format(trace_id, "032x"), "the consumer's log continues the trace"

    consume = [s for s in spans.get_finished_spans() if s.name == "consume echo.message.sent"]
    publish = [s for s in spans.get_finished_spans() if s.name == "publish"]
    assert consume[0].context.trace_id == publish[0].context.trace_id == trace_id
    assert consume[0].kind is SpanKind.CONSUMER
    [put_events] = [s for s in spans.get_finished_spans() if s.name == "eventbridge.PutEvents"]
    assert put_events.parent is not None
    assert put_events.parent.span_id == publish[0].context.span_id
    assert put_events.kind is SpanKind.CLIENT, "AWS calls are traced as client spans"
    assert await _receive(sqs, url, want=1, wait_s=0) == [], "a handled message is deleted"


async def test_invalid_event_is_refused_before_anything_is_sent(
    aws: AwsClients, platform: Platform
) -> None:
    publisher = await _publisher(aws, platform)
    valid = MessageSent(text="fine")
    broken = MessageSent.model_construct(text=None)  # type: ignore[arg-type]  # skipped validation, as a bug might

    with pytest.raises(InvalidEvent, match=r"echo\.message\.sent"):
        await publisher.publish(valid, broken)

    sqs, url = await _queue(aws, platform)
    assert await _receive(sqs, url, want=1, wait_s=1) == [], "not even the valid one went out"


async def _put_raw(aws: AwsClients, platform: Platform, type_: str, version: int) -> None:
    """What a producer running newer code than this consumer would put on the bus."""
    envelope = {
        "id": f"raw-{type_}-{version}",
        "type": type_,
        "version": version,
        "source": "longhaul.echo",
        "time": "2026-11-25T10:00:00+00:00",
        "correlation_id": "raw",
        "traceparent": None,
        "data": {"text": "from the future"},
    }
    response = await (await aws.get("events")).put_events(
        Entries=[
            {
                "Source": "longhaul.echo",
                "DetailType": type_,
                "Detail": json.dumps(envelope),
                "EventBusName": ResourceNames.of(ECHO, platform.env).bus,
            }
        ]
    )
    assert response["FailedEntryCount"] == 0


def _unrouted(reader: InMemoryMetricReader, reason: str) -> int:
    data = reader.get_metrics_data()
    total = 0
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "longhaul.events.unrouted":
                    for point in metric.data.data_points:
                        attributes = point.attributes or {}
                        if (
                            isinstance(point, NumberDataPoint)
                            and attributes.get("reason") == reason
                        ):
                            total += int(point.value)
    return total


async def test_unknown_type_is_counted_and_dropped_unknown_version_is_kept(
    aws: AwsClients, platform: Platform, json_logs: LogCapture, metric_reader: InMemoryMetricReader
) -> None:
    before_type = _unrouted(metric_reader, "unknown_type")
    before_version = _unrouted(metric_reader, "unknown_version")
    await _put_raw(aws, platform, "echo.message.deleted", 1)
    await _put_raw(aws, platform, "echo.message.sent", 9)
    sqs, url = await _queue(aws, platform)
    router = EventRouter()
    router.on(MessageSent)(_noop)
    consumer = SqsConsumer(sqs, url, router, retry_base_s=1, retry_max_s=1)

    messages = await _receive(sqs, url, want=2)
    outcome = await consumer.handle(messages)

    assert (len(outcome.delete), len(outcome.retry)) == (1, 1)
    assert router.unrouted == {"unknown_type": 1, "unknown_version": 1}
    assert _unrouted(metric_reader, "unknown_type") == before_type + 1
    assert _unrouted(metric_reader, "unknown_version") == before_version + 1
    warnings = {r.get("reason") for r in json_logs.records if r["level"] == "WARNING"}
    assert {"unknown_type", "unknown_version"} <= warnings
    # The unknown version stays for a newer consumer (or the DLQ); the unknown type is gone.
    [again] = await _receive(sqs, url, want=1, wait_s=5)
    assert json.loads(again["Body"])["detail"]["version"] == 9


async def _noop(delivery: Delivery[MessageSent]) -> None:
    return None


async def test_partial_batch_failure_redelivers_only_the_failed_messages(
    aws: AwsClients, platform: Platform
) -> None:
    publisher = await _publisher(aws, platform)
    await publisher.publish(*(MessageSent(text=f"m{i}") for i in range(5)))
    handled: list[str] = []

    router = EventRouter()

    @router.on_batch(MessageSent)
    async def batch(deliveries: list[Delivery[MessageSent]]) -> BatchResult:
        handled.extend(d.event.text for d in deliveries)
        failing = {
            d.message_id for d in deliveries if d.event.text == "m3" and d.receive_count == 1
        }
        return BatchResult(failed=failing)

    sqs, url = await _queue(aws, platform)
    consumer = SqsConsumer(sqs, url, router, retry_base_s=1, retry_max_s=1)
    first = await _receive(sqs, url, want=5)
    assert len(first) == 5
    await consumer.handle(first)

    redelivered = await _receive(sqs, url, want=1, wait_s=5)
    assert [json.loads(m["Body"])["detail"]["data"]["text"] for m in redelivered] == ["m3"]
    assert redelivered[0]["Attributes"]["ApproximateReceiveCount"] == "2"
    await consumer.handle(redelivered)
    assert sorted(handled) == ["m0", "m1", "m2", "m3", "m3", "m4"]
    assert await _receive(sqs, url, want=1, wait_s=2) == []


async def test_one_failing_event_does_not_fail_its_neighbours(
    aws: AwsClients, platform: Platform, json_logs: LogCapture
) -> None:
    publisher = await _publisher(aws, platform)
    await publisher.publish(MessageSent(text="ok"), MessageSent(text="bad", fail=True))
    sqs, url = await _queue(aws, platform)
    consumer = SqsConsumer(sqs, url, echo_router, retry_base_s=1, retry_max_s=1)

    outcome = await consumer.handle(await _receive(sqs, url, want=2))

    assert (len(outcome.delete), len(outcome.retry)) == (1, 1)
    [error] = [r for r in json_logs.records if r["message"] == "event handler failed"]
    assert "asked to fail" in str(error["exception"])


async def test_malformed_message_is_kept_for_the_dlq_and_the_consumer_goes_on(
    aws: AwsClients, platform: Platform
) -> None:
    sqs, url = await _queue(aws, platform)
    await sqs.send_message(QueueUrl=url, MessageBody="not json {")
    await (await _publisher(aws, platform)).publish(MessageSent(text="after"))
    consumer = SqsConsumer(sqs, url, echo_router, retry_base_s=1, retry_max_s=1)

    outcome = await consumer.handle(await _receive(sqs, url, want=2))

    assert (len(outcome.delete), len(outcome.retry)) == (1, 1)


async def test_envelope_sent_straight_to_sqs_carries_its_context_as_attributes(
    aws: AwsClients, platform: Platform, json_logs: LogCapture
) -> None:
    from longhaul.events import envelope_for

    sqs, url = await _queue(aws, platform)
    consumer = SqsConsumer(sqs, url, echo_router)
    with (
        context.bind(correlation="direct-7"),
        tracer().start_as_current_span("enqueue") as span,
    ):
        traceparent = (
            f"00-{span.get_span_context().trace_id:032x}-{span.get_span_context().span_id:016x}-01"
        )
        await consumer.send(
            envelope_for(
                MessageSent(text="direct"), source="longhaul.echo", traceparent=traceparent
            )
        )

    [message] = await _receive(sqs, url, want=1)
    attributes = message["MessageAttributes"]
    assert attributes["correlation_id"]["StringValue"] == "direct-7"
    assert attributes["traceparent"]["StringValue"] == traceparent
    await consumer.handle([message])
    [line] = [r for r in json_logs.records if r["message"] == "echo received"]
    assert line["correlation_id"] == "direct-7"
    assert line["trace_id"] == f"{span.get_span_context().trace_id:032x}"


async def test_a_gathering_router_gets_many_receives_in_one_call_and_every_message_settles(
    aws: AwsClients, platform: Platform
) -> None:
    """A router that gathers (analytics' ingest costs per call) gets 35 messages in one
    handler call although SQS gives 10 a receive; the remainder under the limit is handed
    on after the wait; all are deleted past SQS's 10-entry batch calls, and the failed one
    alone comes back."""
    publisher = await _publisher(aws, platform)
    await publisher.publish(*(MessageSent(text=f"m{i}") for i in range(45)))
    calls: list[list[str]] = []
    router = EventRouter(gather=30, gather_wait_s=0.5)

    @router.on_batch(MessageSent)
    async def batch(deliveries: list[Delivery[MessageSent]]) -> BatchResult:
        calls.append([d.event.text for d in deliveries])
        return BatchResult(failed={d.message_id for d in deliveries if d.event.text == "m7"})

    sqs, url = await _queue(aws, platform)
    consumer = SqsConsumer(sqs, url, router, retry_base_s=60, retry_max_s=60)
    received = await _receive(sqs, url, want=45)
    assert len(received) == 45
    for i in range(0, 40, 10):
        await consumer.feed(received[i : i + 10])
    assert [len(c) for c in calls] == [30], "three receives in one call, the fourth waiting"
    await consumer.feed(received[40:])
    for _ in range(300):  # the wait, then the handler's call, on a machine as slow as it is
        if len(calls) == 2:
            break
        await asyncio.sleep(0.1)
    assert [len(c) for c in calls] == [30, 15], "the rest handed on after the wait"
    await consumer.close()

    assert sorted(t for c in calls for t in c) == sorted(f"m{i}" for i in range(45))
    assert await _receive(sqs, url, want=1, wait_s=2) == [], "all deleted, m7 hidden a minute"
    attributes = await sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )
    assert attributes["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "1"
