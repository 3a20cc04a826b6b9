"""The production rule's handler, against Elastic Load Balancing's own API model (botocore's
Stubber checks every call's parameters): it sends the weights once, when it creates the rule,
and answers each deployment with the alarms of the group the new revision goes to."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import botocore.session
import pytest
from botocore.stub import Stubber

from longhaul_deploy import production_rule_handler as handler
from tests.unit.deploy._template import one, stand_in
from tests.unit.deploy.conftest import Synthesized

RULE = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/lb/1/2/3"


@pytest.fixture
def elbv2() -> Iterator[tuple[Any, Stubber]]:
    client = botocore.session.get_session().create_client(
        "elbv2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def properties(dev: Synthesized) -> dict[str, Any]:
    """Media's rule as CloudFormation sends it to the handler."""
    _, rule = one(dev.resources("media", handler.RESOURCE_TYPE))
    found: dict[str, Any] = stand_in(rule["Properties"])
    return found


def _groups(properties: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    blue, green = properties["TargetGroups"]
    return blue, green


def _event(kind: str, new: dict[str, Any], old: dict[str, Any] | None = None) -> dict[str, Any]:
    event = {
        "RequestType": kind,
        "ResourceProperties": new,
        "StackId": "stack",
        "RequestId": "request",
        "LogicalResourceId": "ApiRoute",
        "ResponseURL": "https://cloudformation-custom-resource-response.example/answer",
    }
    if kind != "Create":
        event["PhysicalResourceId"] = RULE
    if old is not None:
        event["OldResourceProperties"] = old
    return event


def _rule_with(weights: dict[str, int]) -> dict[str, Any]:
    groups = [{"TargetGroupArn": arn, "Weight": weight} for arn, weight in weights.items()]
    return {
        "Rules": [
            {
                "RuleArn": RULE,
                "Actions": [{"Type": "forward", "ForwardConfig": {"TargetGroups": groups}}],
            }
        ]
    }


DEFAULT_RULE = {"RuleArn": "default", "Priority": "default", "IsDefault": True, "Actions": []}


def test_create_sends_the_weighted_forward_action_once_and_names_the_idle_groups_alarms(
    properties: dict[str, Any], elbv2: tuple[Any, Stubber]
) -> None:
    client, stubber = elbv2
    blue, green = _groups(properties)
    other = {**_rule_with({"arn:other-service": 1})["Rules"][0], "Priority": "8120"}
    stubber.add_response(
        "describe_rules",
        {"Rules": [DEFAULT_RULE, other]},
        {"ListenerArn": properties["ListenerArn"]},
    )
    stubber.add_response(
        "create_rule",
        {"Rules": [{"RuleArn": RULE}]},
        {
            "ListenerArn": properties["ListenerArn"],
            "Priority": 8110,
            "Conditions": [
                {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/media/*"]}}
            ],
            "Actions": [
                {
                    "Type": "forward",
                    "ForwardConfig": {
                        "TargetGroups": [
                            {"TargetGroupArn": blue["TargetGroupArn"], "Weight": 100},
                            {"TargetGroupArn": green["TargetGroupArn"], "Weight": 0},
                        ]
                    },
                }
            ],
            "Transforms": properties["Transforms"],
        },
    )
    rule_arn, data = handler.handle(_event("Create", properties), client)
    assert rule_arn == RULE
    assert data == {handler.ROLLBACK_ALARMS: ",".join(green["AlarmNames"])}


def test_create_takes_over_the_live_weights_of_the_rule_it_replaces(
    properties: dict[str, Any], elbv2: tuple[Any, Stubber]
) -> None:
    # A stack deployed with CloudFormation's own listener rule: production is on the second
    # group. The new rule takes its place and its weights; the old one moves aside, where
    # CloudFormation deletes it after the update.
    client, stubber = elbv2
    blue, green = _groups(properties)
    live = {blue["TargetGroupArn"]: 0, green["TargetGroupArn"]: 100}
    old_rule = {**_rule_with(live)["Rules"][0], "RuleArn": "old", "Priority": "8110"}
    last = {**_rule_with({"arn:other": 1})["Rules"][0], "RuleArn": "last", "Priority": "50000"}
    stubber.add_response(
        "describe_rules",
        {"Rules": [old_rule], "NextMarker": "page-2"},
        {"ListenerArn": properties["ListenerArn"]},
    )
    stubber.add_response(
        "describe_rules",
        {"Rules": [last, DEFAULT_RULE]},
        {"ListenerArn": properties["ListenerArn"], "Marker": "page-2"},
    )
    stubber.add_response(
        "set_rule_priorities",
        {"Rules": []},
        {"RulePriorities": [{"RuleArn": "old", "Priority": 49999}]},
    )
    (create,) = handler.plan(_event("Create", properties), live)
    assert create[1]["Actions"][0]["ForwardConfig"]["TargetGroups"] == [
        {"TargetGroupArn": blue["TargetGroupArn"], "Weight": 0},
        {"TargetGroupArn": green["TargetGroupArn"], "Weight": 100},
    ]
    stubber.add_response("create_rule", {"Rules": [{"RuleArn": RULE}]}, create[1])
    rule_arn, data = handler.handle(_event("Create", properties), client)
    assert rule_arn == RULE
    assert data == {handler.ROLLBACK_ALARMS: ",".join(blue["AlarmNames"])}


def test_an_update_of_the_priority_sends_no_weight_and_reads_the_live_ones(
    properties: dict[str, Any], elbv2: tuple[Any, Stubber]
) -> None:
    client, stubber = elbv2
    blue, green = _groups(properties)
    moved = {**properties, "Priority": "8117"}
    stubber.add_response(
        "set_rule_priorities",
        {"Rules": []},
        {"RulePriorities": [{"RuleArn": RULE, "Priority": 8117}]},
    )
    # Production is on the second group after an odd number of deployments.
    live = {blue["TargetGroupArn"]: 0, green["TargetGroupArn"]: 100}
    stubber.add_response("describe_rules", _rule_with(live), {"RuleArns": [RULE]})
    rule_arn, data = handler.handle(_event("Update", moved, properties), client)
    assert rule_arn == RULE
    assert data == {handler.ROLLBACK_ALARMS: ",".join(blue["AlarmNames"])}


def test_an_update_of_the_path_modifies_conditions_and_transforms_only(
    properties: dict[str, Any], elbv2: tuple[Any, Stubber]
) -> None:
    client, stubber = elbv2
    blue, green = _groups(properties)
    conditions = [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/video/*"]}}]
    transforms = [
        {
            "Type": "url-rewrite",
            "UrlRewriteConfig": {"Rewrites": [{"Regex": "^/video/(.*)$", "Replace": "/$1"}]},
        }
    ]
    changed = {**properties, "Conditions": conditions, "Transforms": transforms}
    stubber.add_response(
        "modify_rule",
        {"Rules": []},
        {"RuleArn": RULE, "Conditions": conditions, "Transforms": transforms},
    )
    live = {blue["TargetGroupArn"]: 100, green["TargetGroupArn"]: 0}
    stubber.add_response("describe_rules", _rule_with(live), {"RuleArns": [RULE]})
    _, data = handler.handle(_event("Update", changed, properties), client)
    assert data == {handler.ROLLBACK_ALARMS: ",".join(green["AlarmNames"])}
    # No transform left: reset, not kept.
    (call,) = handler.plan(_event("Update", {**changed, "Transforms": []}, changed))
    assert call == (
        "ModifyRule",
        {"RuleArn": RULE, "Conditions": conditions, "ResetTransforms": True},
    )


def test_a_new_task_definition_only_reads_the_weights(
    properties: dict[str, Any], elbv2: tuple[Any, Stubber]
) -> None:
    client, stubber = elbv2
    blue, green = _groups(properties)
    deployed = {**properties, "Deployment": {**properties["Deployment"], "TaskDefinition": "td:2"}}
    assert handler.plan(_event("Update", deployed, properties)) == []
    live = {blue["TargetGroupArn"]: 0, green["TargetGroupArn"]: 100}
    stubber.add_response("describe_rules", _rule_with(live), {"RuleArns": [RULE]})
    _, data = handler.handle(_event("Update", deployed, properties), client)
    assert data == {handler.ROLLBACK_ALARMS: ",".join(blue["AlarmNames"])}


def test_replacing_a_target_group_or_the_listener_is_refused(properties: dict[str, Any]) -> None:
    blue, green = _groups(properties)
    replaced = {**properties, "TargetGroups": [blue, {**green, "TargetGroupArn": "other"}]}
    with pytest.raises(ValueError, match="ECS's to shift"):
        handler.plan(_event("Update", replaced, properties))
    moved = {**properties, "ListenerArn": "another"}
    with pytest.raises(ValueError, match="another listener"):
        handler.plan(_event("Update", moved, properties))


def test_delete_removes_the_rule_once_and_skips_a_rule_never_created(
    properties: dict[str, Any], elbv2: tuple[Any, Stubber]
) -> None:
    client, stubber = elbv2
    stubber.add_response("delete_rule", {}, {"RuleArn": RULE})
    assert handler.handle(_event("Delete", properties), client) == (RULE, {})
    stubber.add_client_error("delete_rule", service_error_code="RuleNotFound")
    assert handler.handle(_event("Delete", properties), client) == (RULE, {})
    never = {**_event("Delete", properties), "PhysicalResourceId": "failed-request"}
    assert handler.plan(never) == []


def test_every_request_is_answered_failures_with_their_reason(
    properties: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    answers: list[dict[str, Any]] = []

    class Answer:
        def __enter__(self) -> Answer:
            return self

        def __exit__(self, *_: object) -> None:
            return None

        def read(self) -> bytes:
            return b""

    def urlopen(request: Any, timeout: float) -> Answer:
        assert request.get_method() == "PUT"
        assert request.full_url.startswith("https://")
        answers.append(json.loads(request.data))
        return Answer()

    monkeypatch.setattr("urllib.request.urlopen", urlopen)
    blue, green = _groups(properties)
    replaced = {**properties, "TargetGroups": [blue, {**green, "TargetGroupArn": "other"}]}
    handler.handler(_event("Update", replaced, properties), None, client=object())
    (answer,) = answers
    assert answer["Status"] == "FAILED"
    assert "ECS's to shift" in answer["Reason"]
    assert answer["PhysicalResourceId"] == RULE
    assert (answer["StackId"], answer["RequestId"], answer["LogicalResourceId"]) == (
        "stack",
        "request",
        "ApiRoute",
    )
