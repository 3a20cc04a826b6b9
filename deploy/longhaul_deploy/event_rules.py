"""The service's EventBridge rules, from the spec's `RuleSpec`s, each delivering to the
service's queue."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from longhaul.spec import RuleSpec
from longhaul_deploy._utils import event_pattern

__all__ = ["EventRules"]


class EventRules(Construct):
    """One rule per declared rule, on the platform bus or the account's default bus."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        rules: tuple[RuleSpec, ...],
        platform_bus: events.IEventBus,
        queue: sqs.IQueue,
        dead_letter_queue: sqs.IQueue,
        bucket_name: str | None,
    ) -> None:
        super().__init__(scope, construct_id)
        # S3 puts "Object Created" on the default bus only (RuleSpec's docstring).
        default_bus = events.EventBus.from_event_bus_name(self, "DefaultBus", "default")
        self.rules: dict[str, events.Rule] = {}
        for rule in rules:
            created = events.Rule(
                self,
                rule.name,
                event_bus=platform_bus if rule.bus == "platform" else default_bus,
                description=f"{rule.name}: matching {rule.bus} bus events to the queue",
                event_pattern=event_pattern(rule.pattern_for(bucket_name)),
            )
            # Events EventBridge cannot deliver in a day land in the service's own DLQ,
            # where the same alarm and the same redrive cover them.
            created.add_target(
                targets.SqsQueue(
                    queue,
                    dead_letter_queue=dead_letter_queue,
                    max_event_age=Duration.hours(24),
                    retry_attempts=185,
                )
            )
            self.rules[rule.name] = created
