"""The service's EventBridge rules, from the spec's `RuleSpec`s, each delivering to the
service's queue."""

from __future__ import annotations

import jsii
from aws_cdk import Duration, Names, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from aws_cdk.interfaces import aws_events as events_refs
from constructs import Construct

from longhaul.spec import RuleSpec
from longhaul_deploy._utils import event_pattern

__all__ = ["EventRules", "QueueTarget"]

EVENTS = "events.amazonaws.com"
# How long EventBridge retries an event it cannot deliver, and how often, before the DLQ.
MAX_EVENT_AGE = Duration.hours(24)
RETRY_ATTEMPTS = 185


@jsii.implements(events.IRuleTarget)
class QueueTarget:
    """Delivers a rule's events to an encrypted queue, undeliverable ones to its DLQ.

    CDK's `SqsQueue` target lets `events.amazonaws.com` send to an encrypted queue with no
    source condition at all (aws/aws-cdk#11158: naming the rule in the key's policy would be
    a dependency cycle), so any rule in any account could deliver into it. Here each queue's
    policy names the rule (`aws:SourceArn`); the queue policy is a resource of its own, so
    the rule can depend on the queue and the policy on the rule. The key lets EventBridge
    encrypt for the queue, as SQS requires of an AWS service that sends to an encrypted
    queue; what it may send and where is bounded by the queue policies.
    """

    def __init__(self, queue: sqs.IQueue, *, dead_letter_queue: sqs.IQueue, key: kms.IKey):
        self.queue = queue
        self.dead_letter_queue = dead_letter_queue
        self.key = key

    def bind(self, rule: events_refs.IRuleRef, id: str | None = None) -> events.RuleTargetConfig:
        """Allow this rule, and only it, to send to the queue and to its DLQ."""
        rule_arn = rule.rule_ref.rule_arn
        for queue in (self.queue, self.dead_letter_queue):
            queue.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=f"AllowEventRule{Names.node_unique_id(rule.node)}",
                    principals=[iam.ServicePrincipal(EVENTS)],
                    actions=["sqs:SendMessage"],
                    resources=[queue.queue_arn],
                    conditions={"ArnEquals": {"aws:SourceArn": rule_arn}},
                )
            )
        self.key.grant(iam.ServicePrincipal(EVENTS), "kms:GenerateDataKey", "kms:Decrypt")
        return events.RuleTargetConfig(
            arn=self.queue.queue_arn,
            target_resource=self.queue,
            dead_letter_config=events.CfnRule.DeadLetterConfigProperty(
                arn=self.dead_letter_queue.queue_arn
            ),
            retry_policy=events.CfnRule.RetryPolicyProperty(
                maximum_event_age_in_seconds=int(MAX_EVENT_AGE.to_seconds()),
                maximum_retry_attempts=RETRY_ATTEMPTS,
            ),
        )


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
        key: kms.IKey,
        bucket_name: str | None,
    ) -> None:
        super().__init__(scope, construct_id)
        # S3 puts "Object Created" on the default bus only (RuleSpec's docstring).
        default_bus = events.EventBus.from_event_bus_name(self, "DefaultBus", "default")
        # Events EventBridge cannot deliver in a day land in the service's own DLQ, where the
        # same alarm and the same redrive cover them.
        target = QueueTarget(queue, dead_letter_queue=dead_letter_queue, key=key)
        self.rules: dict[str, events.Rule] = {}
        for rule in rules:
            created = events.Rule(
                self,
                rule.name,
                event_bus=platform_bus if rule.bus == "platform" else default_bus,
                description=f"{rule.name}: matching {rule.bus} bus events to the queue",
                # a stand-in the spec's own pattern replaces below
                event_pattern=events.EventPattern(account=[Stack.of(self).account]),
            )
            resource = created.node.default_child
            assert isinstance(resource, events.CfnRule)
            resource.event_pattern = event_pattern(rule.pattern_for(bucket_name))
            created.add_target(target)
            self.rules[rule.name] = created
