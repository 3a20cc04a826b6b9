"""moto's costs that grow with a queue or a table, removed without changing an answer.

With a few thousand messages queued, a ReceiveMessage of 10 took about 1.3 s and sending
2,000 messages took 40 s; with tens of thousands of items in a table, every Query sorted
them all. A backlog benchmark or a soak then measured the emulator and not the service
(and a backlog is what the workers are scaled on). What is changed:

- moto asks `unix_time_millis()` whether each message is visible or delayed, several times
  per message on every call, and each call builds two datetimes (about 6 us). With no
  argument both functions only read the current time, which `time.time()` gives exactly
  (to the microsecond both carry); with an argument they convert it as before.
- For each message a receive returns, moto reads the queue's retention period through
  `get_queue_attributes`, which computes every attribute, three of them counts over all
  the queue's messages. The check reads the retention period from the queue itself.
- A Query of a table's own key (not an index) reads every item of the table, sorted, and
  keeps those of the asked partition. Here it is given only that partition's items,
  sorted the same way; the rest of moto's query (range conditions, filters, paging,
  projections) runs unchanged on them.

After these: sending 2,000 messages takes 1.7 s, a receive of 10 a few milliseconds, and a
Query costs what its partition holds.
"""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["install"]


def _fast(slow: Callable[[datetime.datetime | None], float], scale: float) -> Callable[..., float]:
    def now_or_convert(dt: datetime.datetime | None = None) -> float:
        if dt is None:
            return time.time() * scale
        return slow(dt)

    return now_or_convert


def install() -> None:
    """Patch moto's models (in this process) as the module's docstring says; idempotent."""
    _install_sqs()
    _install_dynamodb_query()


def _install_sqs() -> None:
    from moto.core import utils
    from moto.sqs import models

    models.unix_time = _fast(utils.unix_time, 1.0)  # type: ignore[attr-defined]
    models.unix_time_millis = _fast(utils.unix_time_millis, 1000.0)  # type: ignore[attr-defined]

    def is_message_valid_based_on_retention_period(
        self: Any, queue_name: str, message: Any
    ) -> bool:
        retention_s = int(self.get_queue(queue_name).message_retention_period)
        return bool(retention_s + message.sent_timestamp / 1000 > time.time())

    models.SQSBackend.is_message_valid_based_on_retention_period = (  # type: ignore[method-assign]
        is_message_valid_based_on_retention_period
    )


_partition = threading.local()  # the partition a Query in progress on this thread reads


def _install_dynamodb_query() -> None:
    from moto.dynamodb.models.table import Table

    if getattr(Table.query, "_longhaul_partitioned", False):
        return
    query, all_items = Table.query, Table.all_items

    def partitioned_query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        if index_name is not None or hash_key is None or not self.range_key_attr:
            return query(self, hash_key, *args, **kwargs)
        _partition.of = (self, hash_key)
        try:
            return query(self, hash_key, *args, **kwargs)
        finally:
            _partition.of = None

    def partition_items(self: Any) -> list[Any]:
        asked = getattr(_partition, "of", None)
        if asked is None or asked[0] is not self:
            return list(all_items(self))
        hash_set = self.items.get(asked[1], {})
        return sorted(hash_set.values(), key=lambda x: (x.hash_key, x.range_key))

    partitioned_query._longhaul_partitioned = True  # type: ignore[attr-defined]
    Table.query = partitioned_query  # type: ignore[method-assign]
    Table.all_items = partition_items  # type: ignore[method-assign]
