"""A job's row holds DynamoDB numbers: 38 significant digits at most, magnitudes from
1e-130 to under 1e126. AWS refuses any other number with a ValidationException, which the
local emulator does not raise; the store's encoding refuses it first, naming where it is,
so a payload, a checkpoint or a result that holds one fails with a reason, never a 500 or
a terminal write retried until the lease runs out."""

from __future__ import annotations

import pytest

from longhaul.jobs.store import UnstorableNumber, unstorable_numbers
from longhaul.jobs.store.items import dynamo


def test_each_number_a_row_cannot_hold_is_found_by_its_path() -> None:
    value = {
        "ok": [0.0, 1.5, -2, 10**37, 1e-100, 9.99e125, True, None, "1e-300"],
        "tiny": 1e-300,
        "huge": [10**40],
        "deep": {"nan": float("nan"), "inf": [float("-inf")]},
    }
    assert list(unstorable_numbers(value)) == [
        (("tiny",), 1e-300),
        (("huge", 0), 10**40),
        (("deep", "nan"), pytest.approx(float("nan"), nan_ok=True)),
        (("deep", "inf", 0), float("-inf")),
    ]


def test_the_encoding_refuses_an_unstorable_number_before_any_write() -> None:
    with pytest.raises(UnstorableNumber, match=r"metrics\.loss is 1e-300: a number a job"):
        dynamo({"metrics": {"loss": 1e-300}})
    assert str(dynamo({"loss": 1e-100})["loss"]) == "1E-100"
