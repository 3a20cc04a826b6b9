"""Reading synthesized templates: resources by type, policy actions, container settings."""

from __future__ import annotations

from typing import Any

__all__ = [
    "container",
    "environment",
    "one",
    "policy_actions",
    "ref",
    "role_of_task",
    "stand_in",
]


def one(resources: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """The only resource of a `find_resources` answer, with its logical id."""
    assert len(resources) == 1, sorted(resources)
    ((logical_id, resource),) = resources.items()
    return logical_id, resource


def ref(logical_id: str) -> dict[str, str]:
    """A CloudFormation `Ref` to `logical_id`."""
    return {"Ref": logical_id}


def container(task_definition: dict[str, Any], name: str = "app") -> dict[str, Any]:
    """The task definition's container `name` (the service's, by default; the
    OpenTelemetry collector beside it is `otel`)."""
    (definition,) = [
        c for c in task_definition["Properties"]["ContainerDefinitions"] if c["Name"] == name
    ]
    found: dict[str, Any] = definition
    return found


def environment(task_definition: dict[str, Any]) -> dict[str, Any]:
    """The container's environment, by name."""
    return {e["Name"]: e["Value"] for e in container(task_definition).get("Environment", [])}


def role_of_task(task_definition: dict[str, Any], attribute: str = "TaskRoleArn") -> str:
    """The logical id of a task definition's task (or execution) role."""
    value = task_definition["Properties"][attribute]
    logical_id: str = value["Fn::GetAtt"][0]
    return logical_id


def policy_actions(template: dict[str, Any], role: str) -> dict[str, set[str]]:
    """Every action the policies attached to `role` allow, by action, with their resources
    flattened to strings."""
    found: dict[str, set[str]] = {}
    for resource in template["Resources"].values():
        if (
            resource["Type"] != "AWS::IAM::Policy"
            or ref(role) not in resource["Properties"]["Roles"]
        ):
            continue
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow"
            actions = statement["Action"]
            resources = statement["Resource"]
            for action in [actions] if isinstance(actions, str) else actions:
                for item in resources if isinstance(resources, list) else [resources]:
                    found.setdefault(action, set()).add(_flat(item))
    return found


def _flat(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Ref" in value:
        return f"<{value['Ref']}>"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return f"<{'.'.join(value['Fn::GetAtt'])}>"
    if isinstance(value, dict) and "Fn::Join" in value:
        delimiter, parts = value["Fn::Join"]
        return str(delimiter).join(_flat(part) for part in parts)
    if isinstance(value, dict) and "Fn::ImportValue" in value:
        return f"<import {value['Fn::ImportValue']}>"
    return repr(value)


def stand_in(value: Any) -> Any:
    """`value` as a custom resource's handler receives it: intrinsic functions resolved to
    recognisable stand-ins (`ref:<logical id>`), numbers and booleans as strings, as
    CloudFormation sends every scalar of a custom resource's properties."""
    if isinstance(value, dict):
        if set(value) == {"Ref"}:
            return f"ref:{value['Ref']}"
        if set(value) == {"Fn::GetAtt"}:
            return f"ref:{'.'.join(value['Fn::GetAtt'])}"
        if set(value) == {"Fn::ImportValue"}:
            return f"import:{value['Fn::ImportValue']}"
        if set(value) == {"Fn::Join"}:
            delimiter, parts = value["Fn::Join"]
            return str(delimiter).join(str(stand_in(part)) for part in parts)
        return {key: stand_in(item) for key, item in value.items()}
    if isinstance(value, list):
        return [stand_in(item) for item in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value
