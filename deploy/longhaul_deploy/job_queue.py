"""The service's work queue and its dead-letter queue, from the spec's `QueueSpec`."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from longhaul.spec import QueueSpec
from longhaul_deploy._utils import acknowledge
from longhaul_deploy.config import EnvSettings

__all__ = ["JobQueue"]


class JobQueue(Construct):
    """The queue jobs and events arrive on, with its DLQ; both TLS-only and encrypted with
    the service's key."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: QueueSpec,
        key: kms.IKey,
        settings: EnvSettings,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetters",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,
            retention_period=Duration.seconds(spec.dlq_retention_s),
            enforce_ssl=True,
            removal_policy=settings.removal_policy,
        )
        acknowledge(
            self.dead_letter_queue,
            "AwsSolutions-SQS3",
            "This is the dead-letter queue; its messages wait for a person (alarmed when not "
            "empty) and a redrive, not for another queue.",
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
            visibility_timeout=Duration.seconds(spec.visibility_timeout_s),
            retention_period=Duration.seconds(spec.retention_s),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letter_queue, max_receive_count=spec.max_receive_count
            ),
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,
            enforce_ssl=True,
            removal_policy=settings.removal_policy,
        )
