"""The emulator's parts without a server: reading calls, error shapes as botocore parses
them, rules' counting, and the visibility cap's arithmetic."""

from __future__ import annotations

import io
import json
import random
import threading
import time
from typing import Any

import botocore.session
import pytest
from botocore.parsers import create_parser
from botocore.retries.standard import ThrottledRetryableChecker, TransientRetryableChecker

from longhaul.local.emulator import FaultBook, FaultRule, VisibilityCap
from longhaul.local.emulator.calls import AwsCall
from longhaul.local.emulator.errors import Reply, server_error, throttle

OPERATIONS = {"dynamodb": "GetItem", "sqs": "SendMessage", "events": "PutEvents", "s3": "PutObject"}
SCOPE = "AWS4-HMAC-SHA256 Credential=testing/20260101/eu-west-1/{}/aws4_request, Signature=x"


def _call(service: str, operation: str, body: object = None, **environ: str) -> AwsCall:
    """The call botocore would make for `service`'s `operation`."""
    protocol = botocore.session.get_session().get_service_model(service).protocol
    headers: dict[str, str] = {"HTTP_AUTHORIZATION": SCOPE.format(service)}
    data = b""
    if protocol == "json":
        target = {"dynamodb": "DynamoDB_20120810", "sqs": "AmazonSQS", "events": "AWSEvents"}
        headers["HTTP_X_AMZ_TARGET"] = f"{target[service]}.{operation}"
        headers["CONTENT_TYPE"] = "application/x-amz-json-1.0"
        data = json.dumps(body or {}).encode()
    return AwsCall.of({**headers, "REQUEST_METHOD": "POST", **environ}, data)


def _parsed(reply: Reply, service: str, operation: str) -> dict[str, Any]:
    model = botocore.session.get_session().get_service_model(service)
    response = {
        "status_code": reply.status,
        "headers": dict(reply.headers),
        "body": reply.body,
    }
    parsed: dict[str, Any] = create_parser(model.protocol).parse(
        response, model.operation_model(operation).output_shape
    )
    return parsed


def test_a_json_call_names_its_service_operation_and_region() -> None:
    call = _call("sqs", "ReceiveMessage", {"QueueUrl": "http://x/123/q", "WaitTimeSeconds": 20})

    assert (call.service, call.operation, call.protocol, call.region) == (
        "sqs",
        "ReceiveMessage",
        "json",
        "eu-west-1",
    )
    assert call.params()["WaitTimeSeconds"] == 20
    assert call.with_params(WaitTimeSeconds=0).params() == {
        "QueueUrl": "http://x/123/q",
        "WaitTimeSeconds": 0,
    }


@pytest.mark.parametrize(
    ("method", "path", "query", "operation"),
    [
        ("PUT", "/bucket/a/b.mp4", "", "PutObject"),
        (
            "GET",
            "/bucket/a/b.mp4",
            "X-Amz-Credential=t%2F20260101%2Fus-east-1%2Fs3%2Faws4_request",
            "GetObject",
        ),
        ("POST", "/bucket/key", "uploads", "CreateMultipartUpload"),
        ("PUT", "/bucket/key", "partNumber=1&uploadId=u", "UploadPart"),
        ("GET", "/bucket", "list-type=2&prefix=a", "ListObjectsV2"),
        ("PUT", "/bucket", "notification", ""),
    ],
)
def test_s3_operations_are_read_from_the_method_and_path(
    method: str, path: str, query: str, operation: str
) -> None:
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query}
    if "X-Amz-Credential" not in query:
        environ["HTTP_AUTHORIZATION"] = SCOPE.format("s3")

    call = AwsCall.of(environ, b"")

    assert (call.service, call.protocol, call.operation) == ("s3", "rest-xml", operation)


@pytest.mark.parametrize(
    ("service", "code"),
    [
        ("dynamodb", "ProvisionedThroughputExceededException"),
        ("sqs", "RequestThrottled"),
        ("events", "ThrottlingException"),
        ("s3", "SlowDown"),
    ],
)
def test_a_throttle_parses_to_a_code_botocore_retries_as_throttling(
    service: str, code: str
) -> None:
    operation = OPERATIONS[service]
    call = _call(service, operation, PATH_INFO="/bucket/key")

    parsed = _parsed(throttle(call), service, operation)

    assert parsed["Error"]["Code"] == code
    assert code in ThrottledRetryableChecker._THROTTLED_ERROR_CODES


@pytest.mark.parametrize(
    ("service", "status", "code"),
    [
        ("dynamodb", 500, "InternalServerError"),
        ("sqs", 500, "InternalFailure"),
        ("events", 500, "InternalException"),
        ("s3", 500, "InternalError"),
        ("dynamodb", 503, "ServiceUnavailable"),
        ("sqs", 503, "ServiceUnavailable"),
    ],
)
def test_a_server_error_parses_with_a_status_botocore_retries(
    service: str, status: int, code: str
) -> None:
    operation = OPERATIONS[service]
    reply = server_error(_call(service, operation, PATH_INFO="/bucket/key"), status)

    parsed = _parsed(reply, service, operation)

    assert parsed["Error"]["Code"] == code
    assert parsed["ResponseMetadata"]["HTTPStatusCode"] == status
    assert status in TransientRetryableChecker._TRANSIENT_STATUS_CODES


def test_a_rule_counts_matches_skips_its_first_calls_and_stops_at_its_times() -> None:
    book = FaultBook(random.Random(0))
    [rule] = book.add(
        [FaultRule(service="sqs", fault="throttle", match="queue-a", after=1, times=2)]
    )
    mine = _call("sqs", "SendMessage", {"QueueUrl": "http://x/123/queue-a"})
    other = _call("sqs", "SendMessage", {"QueueUrl": "http://x/123/queue-b"})

    fired = [book.pick(mine) is not None for _ in range(4)]
    assert book.pick(other) is None

    assert fired == [False, True, True, False]
    report = book.report()["rules"][0]
    assert (report["id"], report["matched"], report["fired"]) == (rule, 4, 2)


def test_clearing_releases_a_held_request() -> None:
    book = FaultBook()
    held = threading.Thread(target=book.hold, args=(None,))
    held.start()
    while book.report()["holding"] == 0:
        time.sleep(0.01)

    book.clear()
    held.join(timeout=10)

    assert not held.is_alive()
    assert book.report() == {"rules": [], "holding": 0}


def test_the_cap_counts_whole_seconds_from_the_receipt() -> None:
    cap = VisibilityCap(10)
    cap.received(["h"], at=100.0)

    assert cap.refusal("h", 10, now=100.9) is None
    assert cap.refusal("h", 9, now=101.2) is None
    assert cap.refusal("h", 10, now=101.2) == (
        "Value 10 for parameter VisibilityTimeout is invalid. Reason: Total "
        "VisibilityTimeout for the message is beyond the limit [10 seconds]"
    )
    assert cap.refusal("unknown", 10**6, now=101.2) is None, "moto answers for the rest"


def test_receipts_past_the_cap_are_forgotten() -> None:
    cap = VisibilityCap(10)
    cap.received(["old"], at=0.0)
    cap.received(["new"], at=1000.0)

    assert cap.refusal("old", 5, now=1000.0) is None
    assert cap.refusal("new", 11, now=1000.0) is not None


def test_a_body_is_read_once_and_left_readable() -> None:
    from longhaul.local.emulator.app import _read_body

    environ: dict[str, Any] = {"wsgi.input": io.BytesIO(b"abcdef"), "CONTENT_LENGTH": "3"}

    assert _read_body(environ) == b"abc"
    assert environ["wsgi.input"].read() == b"abc"
