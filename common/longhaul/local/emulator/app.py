"""The emulator's WSGI middleware: moto's app, one call at a time, with faults in front.

moto's backends are plain Python objects written for one thread, but its server runs
each request on a thread of its own: a conditional write evaluates its condition and
applies its update in separate steps, and SQS rebuilds a queue's message list while a
send appends to it. So every call into moto runs under one process-wide lock. One lock,
not one per service, because the services reach into each other (EventBridge delivers
to SQS, S3 notifies EventBridge). Under the GIL moto runs one request at a time anyway,
so the lock costs nothing but the waits held inside it, and none is: request bodies are
read before it is taken, responses are written after it is released, injected faults
wait outside it, and an SQS long poll is a series of short polls under it with the
waiting in between.
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlparse
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from pydantic import TypeAdapter, ValidationError

from longhaul.local.emulator import errors
from longhaul.local.emulator.calls import AwsCall
from longhaul.local.emulator.errors import Reply
from longhaul.local.emulator.faults import FaultBook, FaultRule
from longhaul.local.emulator.visibility import DEFAULT_CAP_S, VisibilityCap

__all__ = ["CONTROL_PREFIX", "DropConnection", "Emulator"]

CONTROL_PREFIX = "/_longhaul/"
# How often a waiting long poll looks again when nothing woke it: messages also become
# visible by the clock (a visibility timeout or a delay ends). moto's own loop looks once
# a second.
_POLL_INTERVAL_S = 0.5
# Calls after which a waiting long poll looks at once: they can make a message receivable.
_SQS_READS = {"ReceiveMessage", "GetQueueUrl", "GetQueueAttributes", "ListQueues"}
_WRITE_METHODS = {"PUT", "POST", "DELETE"}
_RECEIPT_XML = re.compile(rb"<ReceiptHandle>([^<]+)</ReceiptHandle>")
_RULES = TypeAdapter(list[FaultRule])


class DropConnection(ConnectionResetError):
    """Raised to the server to close the client's connection with a reset, unanswered."""


class Emulator:
    """moto's WSGI app behind one lock, with fault injection and SQS's visibility cap."""

    def __init__(self, app: WSGIApplication, *, visibility_cap_s: float | None = None) -> None:
        self.app = app
        self.faults = FaultBook()
        self.default_cap_s = DEFAULT_CAP_S if visibility_cap_s is None else visibility_cap_s
        self.visibility = VisibilityCap(self.default_cap_s)
        self._moto = threading.Lock()
        self._queues = threading.Condition()
        self._queue_changes = 0

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Answer one request."""
        body = _read_body(environ)
        if str(environ.get("PATH_INFO", "")).startswith(CONTROL_PREFIX):
            reply = self._control(environ, body)
        else:
            call = AwsCall.of(environ, body)
            rule = self.faults.pick(call)
            reply = (self._inject(rule, call) if rule else None) or self._serve(environ, call)
        start_response(reply.status_line, reply.headers)
        return [reply.body]

    # -- faults ----------------------------------------------------------------------

    def _inject(self, rule: FaultRule, call: AwsCall) -> Reply | None:
        """The fault's reply; None after a latency, to go on to moto."""
        if rule.fault == "throttle":
            return errors.throttle(call, rule.code, rule.message)
        if rule.fault == "error":
            return errors.server_error(call, rule.status, rule.code, rule.message)
        if rule.fault == "latency":
            time.sleep(rule.seconds or 0)
            return None
        if rule.fault == "hang":
            self.faults.hold(rule.seconds)
        raise DropConnection(f"fault injected: {rule.fault}")

    # -- moto ------------------------------------------------------------------------

    def _serve(self, environ: WSGIEnvironment, call: AwsCall) -> Reply:
        if call.service == "sqs" and call.operation == "ReceiveMessage":
            return self._receive(environ, call)
        if call.service == "sqs" and call.operation.startswith("ChangeMessageVisibility"):
            reply = self._change_visibility(environ, call)
        else:
            reply = self._moto_call(environ, call)
        if _may_make_messages_receivable(call):
            with self._queues:
                self._queue_changes += 1
                self._queues.notify_all()
        if call.path.startswith("/moto-api/reset"):
            self.visibility.forget()
        return reply

    def _moto_call(self, environ: WSGIEnvironment, call: AwsCall) -> Reply:
        """moto's whole reply to `call`, made under the lock."""
        sent: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], *_: Any) -> Any:
            sent[:] = [status, headers]
            return lambda data: None  # moto returns its body; it never writes

        fresh = {**environ, "wsgi.input": io.BytesIO(call.body)}
        fresh["CONTENT_LENGTH"] = str(len(call.body))
        with self._moto:
            chunks = self.app(fresh, start_response)
            try:
                body = b"".join(chunks)
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
        status, _, reason = str(sent[0]).partition(" ")
        return Reply(int(status), list(sent[1]), body, reason or None)

    # -- SQS -------------------------------------------------------------------------

    def _receive(self, environ: WSGIEnvironment, call: AwsCall) -> Reply:
        """A ReceiveMessage, its long poll made of short polls so that it never holds the lock."""
        params = call.params()
        wait = params.get("WaitTimeSeconds")
        if wait is None:
            wait = self._default_wait(call, params)
        try:
            deadline = time.monotonic() + int(wait)
        except (TypeError, ValueError):
            return self._moto_call(environ, call)  # moto refuses it as AWS would
        short = call.with_params(WaitTimeSeconds=0)
        while True:
            with self._queues:
                seen = self._queue_changes
            reply = self._moto_call(environ, short)
            handles = _receipt_handles(reply, call)
            remaining = deadline - time.monotonic()
            if handles or reply.status != 200 or remaining <= 0:
                self.visibility.received(handles)
                return reply
            self._wait_for_change(seen, min(_POLL_INTERVAL_S, remaining))

    def _wait_for_change(self, seen: int, timeout: float) -> None:
        """Wait until a call may have made a message receivable since `seen`, or `timeout`."""
        with self._queues:
            self._queues.wait_for(lambda: self._queue_changes != seen, timeout)

    def _default_wait(self, call: AwsCall, params: dict[str, Any]) -> int:
        """The queue's ReceiveMessageWaitTimeSeconds, which a call without a wait gets."""
        try:
            from moto.sqs.models import sqs_backends  # moto: a development dependency

            account, name = urlparse(str(params["QueueUrl"])).path.strip("/").split("/")[-2:]
            with self._moto:
                queue = sqs_backends[account][call.region].get_queue(name)
                return int(getattr(queue, "receive_message_wait_time_seconds", 0) or 0)
        except Exception:  # no such queue: moto answers the short poll with the error
            return 0

    def _change_visibility(self, environ: WSGIEnvironment, call: AwsCall) -> Reply:
        """A visibility change, refused where it would pass the cap (entry by entry in a batch)."""
        params = call.params()
        if call.operation == "ChangeMessageVisibility":
            refusal = self._refusal(params)
            if refusal is None:
                return self._moto_call(environ, call)
            return errors.error(call, 400, "InvalidParameterValue", refusal)
        entries = params.get("Entries")
        if call.protocol != "json" or not isinstance(entries, list):
            return self._moto_call(environ, call)  # the query protocol's batch: moto's checks
        refused = {id(e): r for e in entries if (r := self._refusal(e)) is not None}
        if not refused:
            return self._moto_call(environ, call)
        kept = [e for e in entries if id(e) not in refused]
        result: dict[str, Any] = {"Successful": [], "Failed": []}
        if kept:
            reply = self._moto_call(environ, call.with_params(Entries=kept))
            if reply.status != 200:
                return reply
            result.update(json.loads(reply.body or b"{}"))
        result.setdefault("Failed", [])
        for entry in entries:
            if id(entry) in refused:
                failure = {"Code": "InvalidParameterValue", "Message": refused[id(entry)]}
                result["Failed"].append({"Id": entry.get("Id"), "SenderFault": True, **failure})
        return Reply.json(200, result, call.content_type or "application/x-amz-json-1.0")

    def _refusal(self, params: Any) -> str | None:
        try:
            handle, timeout = str(params["ReceiptHandle"]), int(params["VisibilityTimeout"])
        except (KeyError, TypeError, ValueError):
            return None  # malformed: moto refuses it
        return self.visibility.refusal(handle, timeout)

    # -- the control endpoint ----------------------------------------------------------

    def _control(self, environ: WSGIEnvironment, body: bytes) -> Reply:
        """`/_longhaul/faults` (GET, POST, DELETE) and `/_longhaul/settings` (GET, PUT)."""
        route = (str(environ.get("REQUEST_METHOD", "GET")), str(environ["PATH_INFO"]).rstrip("/"))
        try:
            if route == ("GET", "/_longhaul/faults"):
                return Reply.json(200, self.faults.report())
            if route == ("POST", "/_longhaul/faults"):
                return Reply.json(201, {"ids": self.faults.add(_RULES.validate_json(body))})
            if route == ("DELETE", "/_longhaul/faults"):
                self.faults.clear()
                return Reply(204)
            if route == ("PUT", "/_longhaul/settings"):
                cap = json.loads(body or b"{}").get("visibility_cap_s")
                self.visibility.cap_s = self.default_cap_s if cap is None else float(cap)
            if route in {("GET", "/_longhaul/settings"), ("PUT", "/_longhaul/settings")}:
                return Reply.json(200, {"visibility_cap_s": self.visibility.cap_s})
        except ValidationError as exc:
            problems = exc.errors(include_url=False, include_context=False)
            return Reply.json(400, {"error": "invalid fault rules", "errors": problems})
        except (ValueError, TypeError, AttributeError) as exc:
            return Reply.json(400, {"error": str(exc)})
        return Reply.json(404, {"error": f"no route {' '.join(route)}"})


def _read_body(environ: WSGIEnvironment) -> bytes:
    """The request's whole body, read before the lock so that no slow upload holds it."""
    stream = environ["wsgi.input"]
    if environ.get("wsgi.input_terminated"):  # chunked: read to the end
        body = stream.read()
    else:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = stream.read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return bytes(body)


def _receipt_handles(reply: Reply, call: AwsCall) -> list[str]:
    if reply.status != 200:
        return []
    if call.protocol == "json":
        messages = json.loads(reply.body or b"{}").get("Messages", [])
        return [str(m["ReceiptHandle"]) for m in messages]
    return [h.decode() for h in _RECEIPT_XML.findall(reply.body)]


def _may_make_messages_receivable(call: AwsCall) -> bool:
    if call.service == "sqs":
        return call.operation not in _SQS_READS
    if call.service == "events":
        return call.operation == "PutEvents"
    return call.service == "s3" and call.method in _WRITE_METHODS
