"""Every queue, rule, table, bucket, secret, lake table and GPU instance group a service's
spec declares appears in its stack, and no other resource of those kinds does: the spec is
the only resource list."""

from __future__ import annotations

import json
from typing import Any

from longhaul.spec import ServiceSpec
from tests.unit.deploy.conftest import Synthesized

KINDS = (
    "AWS::SQS::Queue",
    "AWS::Events::Rule",
    "AWS::DynamoDB::Table",
    "AWS::S3::Bucket",
    "AWS::SecretsManager::Secret",
    "AWS::Glue::Table",
    "AWS::AutoScaling::AutoScalingGroup",
)


def _declared(spec: ServiceSpec) -> dict[str, int]:
    return {
        "AWS::SQS::Queue": 2 if spec.queue else 0,  # the queue and its DLQ
        "AWS::Events::Rule": len(spec.rules),
        "AWS::DynamoDB::Table": 1 if spec.table else 0,
        "AWS::S3::Bucket": 1 if spec.bucket else 0,
        "AWS::SecretsManager::Secret": len(spec.secrets),
        "AWS::Glue::Table": 1 if spec.lake else 0,
        "AWS::AutoScaling::AutoScalingGroup": 1 if spec.gpu_worker else 0,  # the GPU instances
    }


def test_each_service_stack_holds_exactly_what_its_spec_declares(any_app: Synthesized) -> None:
    assert any_app.specs
    for name, spec in any_app.specs.items():
        found = {kind: len(any_app.resources(name, kind)) for kind in KINDS}
        assert found == _declared(spec), name


def test_the_platform_stack_holds_none_of_a_services_resources(any_app: Synthesized) -> None:
    found = {kind: len(any_app.resources("platform", kind)) for kind in KINDS}
    # its one bucket is the platform's log bucket
    assert found == {kind: 1 if kind == "AWS::S3::Bucket" else 0 for kind in KINDS}


def _pattern(rule: dict[str, Any]) -> dict[str, Any]:
    pattern: dict[str, Any] = rule["Properties"]["EventPattern"]
    return pattern


def test_each_rule_matches_its_spec_pattern_on_its_bus_and_targets_the_queue(
    any_app: Synthesized,
) -> None:
    for name, spec in any_app.specs.items():
        rules = list(any_app.resources(name, "AWS::Events::Rule").values())
        buckets = list(any_app.resources(name, "AWS::S3::Bucket"))
        queue_id = (
            next(
                k
                for k, v in any_app.resources(name, "AWS::SQS::Queue").items()
                if "RedrivePolicy" in v["Properties"]
            )
            if spec.queue
            else None
        )
        for declared in spec.rules:
            # The bucket's name is known at deploy time: the pattern carries its Ref.
            placeholder = "BUCKET-NAME"
            expected = json.loads(
                json.dumps(declared.pattern_for(placeholder if buckets else None)).replace(
                    f'"{placeholder}"', json.dumps({"Ref": buckets[0]}) if buckets else ""
                )
            )
            matching = [r for r in rules if _pattern(r) == expected]
            assert len(matching) == 1, (name, declared.name, [_pattern(r) for r in rules])
            properties = matching[0]["Properties"]
            if declared.bus == "default":
                assert properties["EventBusName"] == "default"
            else:
                assert "ExportsOutputRefBus" in str(properties["EventBusName"])
            (target,) = properties["Targets"]
            assert target["Arn"] == {"Fn::GetAtt": [queue_id, "Arn"]}
            assert "DeadLetterConfig" in target
