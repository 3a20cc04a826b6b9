"""Secrets: read from Secrets Manager by name or ARN at start, held as SecretStr, never logged."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import SecretStr

from longhaul.aws.clients import AwsClients
from longhaul.observability.logging import redact

__all__ = ["SecretNotFound", "Secrets", "load_secrets"]


class SecretNotFound(RuntimeError):
    """A declared secret is missing from Secrets Manager."""


class Secrets:
    """The service's secrets by declared name."""

    def __init__(self, values: Mapping[str, SecretStr]) -> None:
        self._values = dict(values)

    def __getitem__(self, name: str) -> SecretStr:
        return self._values[name]

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def __repr__(self) -> str:
        return f"Secrets({sorted(self._values)})"


async def load_secrets(aws: AwsClients, ids: Mapping[str, str]) -> Secrets:
    """Fetch each secret (declared name -> name or ARN) and scrub its value from all logs."""
    client = await aws.get("secretsmanager")
    values: dict[str, SecretStr] = {}
    for name, secret_id in ids.items():
        try:
            response = await client.get_secret_value(SecretId=secret_id)
        except client.exceptions.ResourceNotFoundException:
            raise SecretNotFound(f"secret {name!r} ({secret_id}) does not exist") from None
        value = response.get("SecretString")
        if value is None:
            value = response["SecretBinary"].decode()
        redact(value)
        values[name] = SecretStr(value)
    return Secrets(values)
