"""A listing cursor is accepted only as the exact key this API issued for the caller;
anything else is `InvalidCursor` (the API's 400), never another error (a 500)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from longhaul.jobs.store import InvalidCursor
from longhaul.jobs.store.items import decode_cursor, encode_cursor


def _key(owner: str = "alice", **changes: Any) -> dict[str, Any]:
    key: dict[str, Any] = {
        "PK": {"S": "JOB#0123abcd"},
        "SK": {"S": "META"},
        "GSI1PK": {"S": f"OWNER#{owner}"},
        "GSI1SK": {"S": "2024-01-01T00:00:00.000000+00:00#0123abcd"},
    }
    key.update(changes)
    return {k: v for k, v in key.items() if v is not None}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


def test_cursor_issued_for_the_caller_round_trips() -> None:
    assert decode_cursor(encode_cursor(_key()), "alice") == _key()


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64 at all!",
        "é",
        "YQ",  # base64 without its padding
        _b64(b"\xff\xfe\x00"),  # not UTF-8
        _b64(b"{not json"),
        _b64(b"[" * 1500),  # nesting deep enough to exhaust the JSON parser
        _b64(b"null"),
        _b64(b'"a string"'),
        _b64(b"[1, 2]"),
        _b64(b'{"GSI1PK": {}}'),
        _b64(b'{"GSI1PK": "OWNER#alice"}'),
        encode_cursor(_key(owner="bob")),  # another caller's cursor
        encode_cursor(_key(GSI1SK=None)),  # a key missing
        encode_cursor({**_key(), "extra": {"S": "x"}}),  # a key too many
        encode_cursor(_key(PK={"N": "1"})),  # a number where a string goes
        encode_cursor(_key(PK={"S": "IDEM#alice#k"})),  # not a job's key
        encode_cursor(_key(SK={"S": "EVENT#1"})),
        encode_cursor(_key(GSI1SK={"S": ""})),
        encode_cursor(_key(GSI1SK={"S": "x" * 2000})),
        encode_cursor(_key(GSI1SK={"S": "x", "N": "1"})),
        encode_cursor(_key(GSI1SK={"S": ["x"]})),
    ],
)
def test_anything_but_an_issued_cursor_is_invalid(cursor: str) -> None:
    with pytest.raises(InvalidCursor, match="not one this API issued"):
        decode_cursor(cursor, "alice")
