"""dev and prod come from the same code and differ only in sizes, retention and protection."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.unit.deploy.conftest import Synthesized

SIZES = {"DesiredCount", "MinCapacity", "MaxCapacity", "NatGatewayId", "MinSize", "MaxSize"}
RETENTION = {"RetentionInDays", "RetentionDays", "ExpirationInDays"}
PROTECTION = {
    "DeletionPolicy",
    "UpdateReplacePolicy",
    "DeletionProtection",
    "DeletionProtectionEnabled",
    "deletion_protection.enabled",
}
# A second NAT gateway (one per AZ) is prod's only extra resource.
PROD_ONLY = {"AWS::EC2::EIP", "AWS::EC2::NatGateway"}
# What the person deploying passes (the prod fixture passes them, the dev one does not).
FROM_CONTEXT = {"AWS::SNS::Subscription", "CertificateArn"}


def _normalized(app: Synthesized, name: str) -> dict[str, Any]:
    text = json.dumps(app.raw(name))
    for form in (
        "longhaul-{}",
        "longhaul{}",
        "longhaul {}",
        '"{}"',
        "={}",
        "/longhaul/{}/",
        "({})",
        "longhaul_{}_",  # Glue databases
    ):
        text = text.replace(form.format(app.env), form.format("ENV"))
    document: dict[str, Any] = json.loads(text)
    return document


def _unhashed(value: Any) -> Any:
    """Names CDK derives from the stack name end in a hash of it."""
    return re.sub(r"[0-9A-F]{8}$", "", value) if isinstance(value, str) else value


def _differences(dev: Any, prod: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if isinstance(dev, dict) and isinstance(prod, dict):
        if dev.get("Key") in PROTECTION and set(dev) == {"Key", "Value"}:  # an LB attribute
            path = (*path, str(dev["Key"]))
        found = []
        for key in sorted(set(dev) | set(prod)):
            if key not in dev or key not in prod:
                found.append((*path, key))
            else:
                found += _differences(dev[key], prod[key], (*path, key))
        return found
    if isinstance(dev, list) and isinstance(prod, list) and len(dev) == len(prod):
        return [d for pair in zip(dev, prod, strict=True) for d in _differences(*pair, path)]
    return [] if _unhashed(dev) == _unhashed(prod) else [path]


def test_dev_and_prod_differ_only_in_sizes_retention_and_protection(
    dev: Synthesized, prod: Synthesized
) -> None:
    assert set(dev.templates) == set(prod.templates)
    kinds: dict[str, set[str]] = {"sizes": set(), "retention": set(), "protection": set()}
    for name in dev.templates:
        before, after = _normalized(dev, name), _normalized(prod, name)
        dev_resources, prod_resources = before.pop("Resources"), after.pop("Resources")
        assert _differences(before, after) == [], name  # outputs, parameters, rules
        only_dev = {k: v["Type"] for k, v in dev_resources.items() if k not in prod_resources}
        only_prod = {k: v["Type"] for k, v in prod_resources.items() if k not in dev_resources}
        # Rules between the stacks' security groups are named after the platform stack.
        renamed = {"AWS::EC2::SecurityGroupIngress", "AWS::EC2::SecurityGroupEgress"}
        assert sorted(t for t in only_dev.values()) == sorted(
            t for t in only_prod.values() if t in renamed
        )
        assert set(only_prod.values()) - renamed - FROM_CONTEXT <= PROD_ONLY
        kinds["sizes"] |= set(only_prod.values()) & PROD_ONLY
        for logical_id in dev_resources.keys() & prod_resources.keys():
            for path in _differences(dev_resources[logical_id], prod_resources[logical_id]):
                key = next(p for p in reversed(path) if p not in ("Ref", "Value"))
                if key in FROM_CONTEXT:
                    continue
                kind = next(
                    (
                        kind
                        for kind, keys in (
                            ("sizes", SIZES),
                            ("retention", RETENTION),
                            ("protection", PROTECTION),
                        )
                        if key in keys
                    ),
                    None,
                )
                assert kind is not None, (name, logical_id, path)
                kinds[kind].add(key)
    assert all(kinds.values()), kinds
