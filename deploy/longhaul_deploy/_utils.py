"""Small helpers the constructs share: cdk-nag acknowledgements, event patterns, tags."""

from __future__ import annotations

from typing import Any

from aws_cdk import Acknowledgment, Stack, Tags, Validations
from constructs import IConstruct

from longhaul_deploy.config import PROJECT

__all__ = ["acknowledge", "event_pattern", "nag_resource", "tag"]

# The top-level keys of an event that a pattern can match on.
_PATTERN_FIELDS = (
    "account",
    "detail",
    "detail-type",
    "id",
    "region",
    "resources",
    "source",
    "time",
    "version",
)


def acknowledge(
    scope: IConstruct, rule: str, reason: str, *, findings: tuple[str, ...] = ()
) -> None:
    """Acknowledge a cdk-nag rule on `scope` (and below), or only the named findings of it."""
    if not reason.strip():
        raise ValueError(f"acknowledging {rule} needs a reason")
    ids = [f"{rule}[{finding}]" for finding in findings] if findings else [rule]
    Validations.of(scope).acknowledge(*(Acknowledgment(id=i, reason=reason) for i in ids))


def nag_resource(scope: IConstruct, arn: str) -> str:
    """The IAM5 finding cdk-nag reports for `arn` in a policy of `scope`'s stack.

    cdk-nag names a wildcard resource by its flattened CloudFormation value (`<Ref>`,
    `<Resource.Attribute>`, joins concatenated), so an acknowledgement can name exactly the
    resource it accepts and nothing broader.
    """
    return "Resource::" + _flatten(Stack.of(scope).resolve(arn))


def _flatten(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Ref":
            return f"<{argument}>"
        if function == "Fn::GetAtt":
            return f"<{'.'.join(argument)}>"
        if function == "Fn::Join":
            delimiter, parts = argument
            return str(delimiter).join(_flatten(part) for part in parts)
    raise ValueError(f"no cdk-nag name for {value!r}")


def event_pattern(pattern: dict[str, Any]) -> dict[str, Any]:
    """A spec's event pattern (EventBridge's JSON), refusing keys EventBridge does not match
    on. It goes to the rule as JSON: the L2 `EventPattern`'s typed fields refuse content
    filters in a top-level field (`"source": [{"prefix": "longhaul."}]`)."""
    unknown = sorted(set(pattern) - set(_PATTERN_FIELDS))
    if unknown:
        raise ValueError(f"event pattern keys EventBridge does not match on: {unknown}")
    return pattern


def tag(scope: IConstruct, *, service: str, environment: str) -> None:
    """The cost allocation tags: project, service and environment."""
    tags = Tags.of(scope)
    tags.add("project", PROJECT)
    tags.add("service", service)
    tags.add("environment", environment)
