"""The quota items in the service's own table, and the few calls every quota makes.

One item per owner and quota, `PK=QUOTA#<owner>`, `SK=<quota>`: no index key, so the job
indexes never see them, and a fixed number per owner, so nothing needs a TTL. Every change
is one conditional write, atomic across the service's API tasks.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from longhaul.jobs.store.items import from_item, to_item
from longhaul.quotas.types import Quotas

__all__ = ["QuotaTable"]


class QuotaTable:
    """One service's quota items."""

    def __init__(self, dynamodb: Any, table: str, limits: Quotas) -> None:
        self._db = dynamodb
        self._table = table
        self.limits = limits

    @staticmethod
    def _now() -> float:
        return time.time()

    @staticmethod
    def _key(owner: str, quota: str) -> dict[str, Any]:
        return to_item({"PK": f"QUOTA#{owner}", "SK": quota})

    async def _read(self, owner: str, quota: str) -> dict[str, Any] | None:
        response = await self._db.get_item(
            TableName=self._table, Key=self._key(owner, quota), ConsistentRead=True
        )
        return from_item(response["Item"]) if "Item" in response else None

    async def _create(self, owner: str, quota: str, values: dict[str, Any]) -> None:
        """Write the item's initial values unless another request just did."""
        with contextlib.suppress(self._db.exceptions.ConditionalCheckFailedException):
            await self._db.put_item(
                TableName=self._table,
                Item={**self._key(owner, quota), **to_item(values)},
                ConditionExpression="attribute_not_exists(PK)",
            )

    async def _update(
        self,
        owner: str,
        quota: str,
        expression: str,
        condition: str | None = None,
        names: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
    ) -> bool:
        """One (conditional) update of the item; whether its condition held."""
        arguments: dict[str, Any] = {
            "TableName": self._table,
            "Key": self._key(owner, quota),
            "UpdateExpression": expression,
        }
        if condition:
            arguments["ConditionExpression"] = condition
        if names:
            arguments["ExpressionAttributeNames"] = names
        if values:
            arguments["ExpressionAttributeValues"] = to_item(values)
        try:
            await self._db.update_item(**arguments)
        except self._db.exceptions.ConditionalCheckFailedException:
            return False
        return True
