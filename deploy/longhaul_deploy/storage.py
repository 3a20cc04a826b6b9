"""The service's data at rest: its DynamoDB table and its S3 bucket, from the spec."""

from __future__ import annotations

import re

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from longhaul.spec import BucketSpec, TableSpec
from longhaul_deploy.config import EnvSettings

__all__ = ["ServiceBucket", "ServiceTable"]

# Incomplete multipart uploads (abandoned presigned uploads) are removed after this long.
ABORT_MULTIPART_AFTER = Duration.days(7)


def _string(name: str) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=name, type=dynamodb.AttributeType.STRING)


class ServiceTable(Construct):
    """The service's table: on demand, point-in-time recovery, the service's key, and
    deletion protection where the environment is protected."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: TableSpec,
        key: kms.IKey,
        settings: EnvSettings,
    ) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=_string(spec.pk),
            sort_key=_string(spec.sk),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            deletion_protection=settings.protected,
            time_to_live_attribute=spec.ttl_attribute,
            removal_policy=settings.removal_policy,
        )
        for gsi in spec.gsis:
            self.table.add_global_secondary_index(
                index_name=gsi.name,
                partition_key=_string(gsi.pk),
                sort_key=_string(gsi.sk) if gsi.sk else None,
                projection_type=dynamodb.ProjectionType(gsi.projection["ProjectionType"]),
                non_key_attributes=list(gsi.include) if gsi.include else None,
            )


class ServiceBucket(Construct):
    """The service's bucket: private, TLS only, the service's key, Intelligent-Tiering,
    the spec's expiring prefixes, and access logs in the platform's log bucket."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: BucketSpec,
        key: kms.IKey,
        settings: EnvSettings,
        log_bucket: s3.IBucket,
        log_prefix: str,
    ) -> None:
        super().__init__(scope, construct_id)
        rules = [
            s3.LifecycleRule(
                id=f"expire-{re.sub(r'[^A-Za-z0-9-]+', '-', prefix).strip('-') or 'all'}",
                prefix=prefix,
                expiration=Duration.days(days),
            )
            for prefix, days in sorted(spec.expire_prefixes.items())
        ]
        # Access patterns are unknown per object (a rendition may be watched once or for
        # years): Intelligent-Tiering moves each object to the cheapest tier that fits,
        # without retrieval fees. Its archive tiers stay off: they make reads asynchronous.
        rules.append(
            s3.LifecycleRule(
                id="intelligent-tiering",
                transitions=[
                    s3.Transition(
                        storage_class=s3.StorageClass.INTELLIGENT_TIERING,
                        transition_after=Duration.days(0),
                    )
                ],
            )
        )
        rules.append(
            s3.LifecycleRule(
                id="abort-incomplete-uploads",
                abort_incomplete_multipart_upload_after=ABORT_MULTIPART_AFTER,
            )
        )
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            lifecycle_rules=rules,
            removal_policy=settings.removal_policy,
        )
        cfn = self.bucket.node.default_child
        assert isinstance(cfn, s3.CfnBucket)
        # Set on the resource itself: the L2's `server_access_logs_bucket` would add this
        # bucket to the platform's bucket policy and make the platform depend on a service;
        # `event_bridge_enabled` would add a custom-resource Lambda for what CloudFormation
        # does natively.
        cfn.logging_configuration = s3.CfnBucket.LoggingConfigurationProperty(
            destination_bucket_name=log_bucket.bucket_name, log_file_prefix=log_prefix
        )
        if spec.eventbridge_notifications:
            cfn.notification_configuration = s3.CfnBucket.NotificationConfigurationProperty(
                event_bridge_configuration=s3.CfnBucket.EventBridgeConfigurationProperty(
                    event_bridge_enabled=True
                )
            )
