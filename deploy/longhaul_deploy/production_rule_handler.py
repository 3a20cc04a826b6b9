"""The custom resource that owns an API's production listener rule, so that ECS alone moves
its weights.

ECS's blue/green moves the weights of the rule's forward action at every deployment, so after
an odd number of them production is on the second target group. CloudFormation's own
listener rule sends the rule's whole `Actions`, weights included, whenever anything in the
rule changes (aws/aws-cdk#36649), which would send production back to a group with no task.
This resource sends the weighted forward action once, when it creates the rule; an update
changes only the priority, the conditions and the transforms, never the actions.

A rule created in place of one that already forwards to the same two groups (the listener
rule of a stack deployed before this resource existed) takes that rule's live weights and
priority, and moves the old one to a spare priority, where CloudFormation deletes it: the
path is served throughout, by the weights ECS last set.

It also answers which target group the next deployment goes to (the one with the lowest live
weight, where ECS registers the new revision) by the names of that group's alarms, which the
API service lists as its rollback alarms: a fault of the old revision never rolls back the new.

This file runs in Lambda as `index.py` (standard library and boto3 only); the deploy tests
call `plan` and `rollback_alarm_names` directly.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

__all__ = [
    "RESOURCE_TYPE",
    "ROLLBACK_ALARMS",
    "handle",
    "handler",
    "live_weights",
    "plan",
    "rollback_alarm_names",
]

RESOURCE_TYPE = "Custom::ProductionListenerRule"
# The attribute naming the rollback alarms, comma-separated.
ROLLBACK_ALARMS = "RollbackAlarmNames"

Call = tuple[str, dict[str, Any]]
# The listener's last rule priority.
MAX_PRIORITY = 50_000


def _groups(properties: dict[str, Any]) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = properties["TargetGroups"]
    return groups


def _forward(properties: dict[str, Any], weights: dict[str, int] | None) -> dict[str, Any]:
    """The weighted forward action the rule is created with: `weights` where given, else the
    configured ones (CloudFormation sends every number of a custom resource's properties as a
    string)."""
    return {
        "Type": "forward",
        "ForwardConfig": {
            "TargetGroups": [
                {
                    "TargetGroupArn": g["TargetGroupArn"],
                    "Weight": int(g["Weight"])
                    if weights is None
                    else weights.get(g["TargetGroupArn"], 0),
                }
                for g in _groups(properties)
            ]
        },
    }


def plan(event: dict[str, Any], weights: dict[str, int] | None = None) -> list[Call]:
    """The Elastic Load Balancing calls that carry out a CloudFormation request: the
    operation's name and its parameters. Only a create sends actions (with `weights`, the
    live ones of a rule it takes over, where there is one)."""
    kind = event["RequestType"]
    new = event["ResourceProperties"]
    if kind == "Create":
        create: dict[str, Any] = {
            "ListenerArn": new["ListenerArn"],
            "Priority": int(new["Priority"]),
            "Conditions": new["Conditions"],
            "Actions": [_forward(new, weights)],
        }
        if new.get("Transforms"):
            create["Transforms"] = new["Transforms"]
        return [("CreateRule", create)]
    rule_arn = str(event["PhysicalResourceId"])
    if kind == "Delete":
        # A create that failed answered with an id that is not a rule's ARN.
        return [("DeleteRule", {"RuleArn": rule_arn})] if rule_arn.startswith("arn:") else []
    old = event["OldResourceProperties"]
    if old["ListenerArn"] != new["ListenerArn"]:
        raise ValueError("the production rule cannot move to another listener in place")
    if {g["TargetGroupArn"] for g in _groups(old)} != {g["TargetGroupArn"] for g in _groups(new)}:
        raise ValueError(
            "the production rule's target groups are ECS's to shift; replacing one needs the "
            "API service replaced with it (docs/deploy.md)"
        )
    calls: list[Call] = []
    if int(old["Priority"]) != int(new["Priority"]):
        calls.append(
            (
                "SetRulePriorities",
                {"RulePriorities": [{"RuleArn": rule_arn, "Priority": int(new["Priority"])}]},
            )
        )
    if old["Conditions"] != new["Conditions"] or old.get("Transforms") != new.get("Transforms"):
        modify: dict[str, Any] = {"RuleArn": rule_arn, "Conditions": new["Conditions"]}
        if new.get("Transforms"):
            modify["Transforms"] = new["Transforms"]
        else:
            modify["ResetTransforms"] = True
        calls.append(("ModifyRule", modify))
    return calls


def rollback_alarm_names(properties: dict[str, Any], weights: dict[str, int]) -> list[str]:
    """The alarms of the group the next deployment goes to: the one with the lowest live
    weight (on a tie, the alternate, listed last)."""
    groups = _groups(properties)
    idle = min(reversed(groups), key=lambda g: weights.get(g["TargetGroupArn"], 0))
    names: list[str] = idle["AlarmNames"]
    return names


def _weights_of(rule: dict[str, Any]) -> dict[str, int]:
    for action in rule["Actions"]:
        if action["Type"] != "forward":
            continue
        if "ForwardConfig" in action:
            groups = action["ForwardConfig"]["TargetGroups"]
            return {g["TargetGroupArn"]: int(g.get("Weight", 1)) for g in groups}
        return {action["TargetGroupArn"]: 1}
    return {}


def live_weights(client: Any, rule_arn: str) -> dict[str, int]:
    """The weights of the rule's forward action as they are now."""
    (rule,) = client.describe_rules(RuleArns=[rule_arn])["Rules"]
    weights = _weights_of(rule)
    if not weights:
        raise ValueError(f"{rule_arn} has no forward action")
    return weights


def _take_over(client: Any, properties: dict[str, Any]) -> dict[str, int] | None:
    """The live weights of a rule on the listener that already forwards to these groups, if
    any; one holding the wanted priority is moved to the highest free one first."""
    rules: list[dict[str, Any]] = []
    pages: dict[str, Any] = {"ListenerArn": properties["ListenerArn"]}
    while True:
        page = client.describe_rules(**pages)
        rules += page["Rules"]
        if not page.get("NextMarker"):
            break
        pages["Marker"] = page["NextMarker"]
    ours = {g["TargetGroupArn"] for g in _groups(properties)}
    previous = [r for r in rules if set(_weights_of(r)) == ours and not r.get("IsDefault")]
    if not previous:
        return None
    rule = min(previous, key=lambda r: int(r["Priority"]))  # the one serving the path
    taken = {int(r["Priority"]) for r in rules if not r.get("IsDefault")}
    if int(rule["Priority"]) == int(properties["Priority"]):
        spare = max(set(range(1, MAX_PRIORITY + 1)) - taken)
        client.set_rule_priorities(RulePriorities=[{"RuleArn": rule["RuleArn"], "Priority": spare}])
    return _weights_of(rule)


def _snake(operation: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in operation).lstrip("_")


def handle(event: dict[str, Any], client: Any) -> tuple[str, dict[str, str]]:
    """Carry out the request with `client` (boto3's elbv2): the rule's ARN and the data the
    resource answers with."""
    rule_arn = str(event.get("PhysicalResourceId", ""))
    inherited = (
        _take_over(client, event["ResourceProperties"])
        if event["RequestType"] == "Create"
        else None
    )
    for operation, parameters in plan(event, inherited):
        try:
            answer = getattr(client, _snake(operation))(**parameters)
        except client.exceptions.RuleNotFoundException:
            if operation != "DeleteRule":
                raise
            continue  # already gone
        if operation == "CreateRule":
            rule_arn = answer["Rules"][0]["RuleArn"]
    if event["RequestType"] == "Delete":
        return rule_arn, {}
    properties = event["ResourceProperties"]
    if event["RequestType"] == "Create":
        weights = inherited or {g["TargetGroupArn"]: int(g["Weight"]) for g in _groups(properties)}
    else:
        weights = live_weights(client, rule_arn)
    names = rollback_alarm_names(properties, weights)
    print(json.dumps({"request": event["RequestType"], "rule": rule_arn, "weights": weights}))
    return rule_arn, {ROLLBACK_ALARMS: ",".join(names)}


def _respond(event: dict[str, Any], body: dict[str, Any]) -> None:
    url = str(event["ResponseURL"])
    if not url.startswith("https://"):
        raise ValueError("CloudFormation's response URL is not https")
    request = urllib.request.Request(  # noqa: S310 - https only, checked above
        url, data=json.dumps(body).encode(), method="PUT", headers={"Content-Type": ""}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
        answer.read()


def handler(event: dict[str, Any], context: Any, client: Any = None) -> None:
    """Lambda's entry point: carry out the request and always answer CloudFormation."""
    body: dict[str, Any] = {
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
        "PhysicalResourceId": event.get("PhysicalResourceId") or f"failed-{event['RequestId']}",
        "Status": "SUCCESS",
    }
    try:
        if client is None:
            import boto3

            client = boto3.client("elbv2")
        body["PhysicalResourceId"], body["Data"] = handle(event, client)
    except Exception as error:  # every failure must reach CloudFormation, or it waits an hour
        body["Status"] = "FAILED"
        body["Reason"] = f"{type(error).__name__}: {error}"[:1000]
        print(json.dumps({"request": event["RequestType"], "failed": body["Reason"]}))
    _respond(event, body)
