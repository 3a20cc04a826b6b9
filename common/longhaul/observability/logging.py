"""JSON logs: one object per line on stdout, with the service, role and request context."""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import UTC, datetime
from typing import Any, TextIO

from opentelemetry import trace

from longhaul.observability import context

__all__ = ["JsonFormatter", "configure_logging", "redact"]

# Attributes every LogRecord has; anything else passed as `extra=` becomes a field.
_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}

_redacted: set[str] = set()
_redacted_lock = threading.Lock()


def redact(value: str) -> None:
    """Never write `value` to a log line again (used for every secret the service loads).

    A JSON object's string values are redacted one by one too: a password stored as
    `{"username": ..., "password": ...}` must not leak on its own either.
    """
    values = [value]
    try:
        document = json.loads(value)
    except ValueError:
        document = None
    if isinstance(document, dict):
        values += [v for v in document.values() if isinstance(v, str)]
    with _redacted_lock:
        for item in values:
            if len(item) >= 4:  # too short to search for without mangling unrelated text
                _redacted.add(item)
                _redacted.add(json.dumps(item, ensure_ascii=False)[1:-1])  # inside a JSON string


def _scrub(line: str) -> str:
    for value in _redacted:
        if value in line:
            line = line.replace(value, "[REDACTED]")
    return line


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object with the Longhaul fields."""

    def __init__(self, service: str, role: str) -> None:
        super().__init__()
        self.service = service
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        span = trace.get_current_span().get_span_context()
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "role": self.role,
            "logger": record.name,
            "message": record.getMessage(),
            "correlation_id": context.correlation_id(),
            "trace_id": format(span.trace_id, "032x") if span.is_valid else None,
            "span_id": format(span.span_id, "016x") if span.is_valid else None,
        }
        if (job := context.job_id()) is not None:
            doc["job_id"] = job
        for key, value in vars(record).items():
            if key not in _RESERVED and key not in doc:
                doc[key] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return _scrub(json.dumps(doc, default=str, ensure_ascii=False))


def configure_logging(
    service: str, role: str, level: str = "INFO", stream: TextIO | None = None
) -> logging.Handler:
    """Send every logger's records to stdout (or `stream`) as JSON lines."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter(service, role))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # uvicorn's own access log is replaced by the kit's access-log middleware.
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    # botocore logs request and response bodies at DEBUG (GetSecretValue's included).
    for noisy in ("botocore", "aiobotocore", "urllib3", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    return handler
