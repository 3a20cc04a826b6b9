"""Log lines are one JSON object each, with the fields the platform searches on."""

from __future__ import annotations

import logging

from opentelemetry.trace import SpanKind

from longhaul.observability import bind, redact, tracer
from tests.conftest import LogCapture


def test_line_carries_service_role_correlation_trace_and_job(json_logs: LogCapture) -> None:
    log = logging.getLogger("longhaul.test")
    with (
        bind(correlation="corr-1", job="job-9"),
        tracer().start_as_current_span("work", kind=SpanKind.INTERNAL) as span,
    ):
        log.info("step %d done", 3, extra={"chunk": 7})
    log.info("outside")

    inside, outside = json_logs.records[-2:]
    context = span.get_span_context()
    assert inside == {
        "time": inside["time"],
        "level": "INFO",
        "service": "echo",
        "role": "test",
        "logger": "longhaul.test",
        "message": "step 3 done",
        "correlation_id": "corr-1",
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
        "job_id": "job-9",
        "chunk": 7,
    }
    assert str(inside["time"]).endswith("+00:00")
    assert outside["correlation_id"] is None
    assert "job_id" not in outside


def test_redacted_values_are_scrubbed_in_every_form(json_logs: LogCapture) -> None:
    value = 'k3y"with\\quotes'
    redact(value)
    logging.getLogger("longhaul.test").warning("value %s", value, extra={"field": value})
    assert "k3y" not in json_logs.text
    assert json_logs.records[-1]["message"] == "value [REDACTED]"
