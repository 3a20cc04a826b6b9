"""Error responses in each protocol's own shape, so botocore parses the codes AWS sends.

botocore reads a JSON protocol's code from `__type` (the part after `#`), SQS's from the
`x-amzn-query-error` header (SQS speaks JSON but keeps its query-era codes), the query
protocol's from `<ErrorResponse><Error><Code>` and S3's from `<Error><Code>`. Its
standard retry mode retries the throttling codes below and every 500, 502, 503 and 504.
"""

from __future__ import annotations

import json
import uuid
import zlib
from dataclasses import dataclass, field
from http import HTTPStatus
from xml.sax.saxutils import escape

from longhaul.local.emulator.calls import AwsCall

__all__ = ["Reply", "error", "server_error", "throttle"]


@dataclass
class Reply:
    """A whole HTTP response, ready to send."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    reason: str | None = None  # moto's own status line, kept as it sent it

    @property
    def status_line(self) -> str:
        """`"200 OK"`, as WSGI's start_response takes it."""
        return f"{self.status} {self.reason or HTTPStatus(self.status).phrase}"

    @classmethod
    def json(cls, status: int, document: object, content_type: str = "application/json") -> Reply:
        """A JSON response."""
        body = json.dumps(document).encode()
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        return cls(status, headers, body)


# What each service answers when it throttles: (HTTP status, code, message).
_THROTTLES = {
    "dynamodb": (
        400,
        "ProvisionedThroughputExceededException",
        "The level of configured provisioned throughput for the table was exceeded. "
        "Consider increasing your provisioning level with the UpdateTable API.",
    ),
    "sqs": (403, "RequestThrottled", "Request is throttled."),
    "s3": (503, "SlowDown", "Please reduce your request rate."),
    "cognito-idp": (400, "TooManyRequestsException", "Too many requests."),
}
_JSON_THROTTLE = (400, "ThrottlingException", "Rate exceeded")
_QUERY_THROTTLE = (400, "Throttling", "Rate exceeded")

# The code each service sends with a 500; a 503 is ServiceUnavailable everywhere.
_INTERNAL_ERRORS = {
    "dynamodb": "InternalServerError",
    "events": "InternalException",
    "s3": "InternalError",
    "secretsmanager": "InternalServiceError",
    "cognito-idp": "InternalErrorException",
}
_SERVER_MESSAGES = {
    500: "We encountered an internal error. Please try again.",
    503: "Service is unavailable. Please try again.",
}


def throttle(call: AwsCall, code: str | None = None, message: str | None = None) -> Reply:
    """The service's throttling error."""
    default = _QUERY_THROTTLE if call.protocol == "query" else _JSON_THROTTLE
    status, default_code, default_message = _THROTTLES.get(call.service, default)
    return error(call, status, code or default_code, message or default_message)


def server_error(
    call: AwsCall, status: int, code: str | None = None, message: str | None = None
) -> Reply:
    """A 5xx from the service."""
    default_code = _INTERNAL_ERRORS.get(call.service, "InternalFailure")
    if status != 500:
        default_code = "ServiceUnavailable"
    return error(call, status, code or default_code, message or _SERVER_MESSAGES[status])


def error(call: AwsCall, status: int, code: str, message: str) -> Reply:
    """An error with `code` and `message`, shaped as `call`'s protocol carries errors."""
    request_id = uuid.uuid4().hex
    fault = "Sender" if status < 500 else "Receiver"
    headers = [("x-amzn-RequestId", request_id)]
    if call.protocol == "json":
        body = json.dumps({"__type": _json_type(call.service, code), "message": message}).encode()
        headers += [("Content-Type", call.content_type or "application/x-amz-json-1.0")]
        headers += [("x-amzn-ErrorType", code)]
        if call.service == "sqs":
            headers.append(("x-amzn-query-error", f"{code};{fault}"))
        if call.service == "dynamodb":  # botocore checks DynamoDB's checksum when it is sent
            headers.append(("x-amz-crc32", str(zlib.crc32(body))))
    elif call.protocol == "query":
        body = (
            f"<ErrorResponse><Error><Type>{fault}</Type><Code>{escape(code)}</Code>"
            f"<Message>{escape(message)}</Message><Detail/></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        headers.append(("Content-Type", "text/xml"))
    elif call.protocol == "rest-xml":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
            f"<RequestId>{request_id}</RequestId></Error>"
        ).encode()
        headers.append(("Content-Type", "application/xml"))
    else:
        body = json.dumps({"message": message}).encode()
        headers += [("Content-Type", "application/json"), ("x-amzn-ErrorType", code)]
    if call.method == "HEAD":  # a HEAD response has no body; botocore reads the status
        body = b""
    headers.append(("Content-Length", str(len(body))))
    return Reply(status, headers, body)


def _json_type(service: str, code: str) -> str:
    """`__type` as each service writes it (botocore keeps the part after `#`)."""
    if service == "dynamodb":
        return f"com.amazonaws.dynamodb.v20120810#{code}"
    if service == "sqs":
        return f"com.amazonaws.sqs#{code}"
    return code
