"""The platform stack: what every service shares (network, cluster, bus, edge, identity,
the log bucket and the alarm topic)."""

from __future__ import annotations

from aws_cdk import Annotations, CfnOutput, Duration, Stack
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from longhaul.spec import platform_bus_name
from longhaul_deploy._utils import acknowledge, tag
from longhaul_deploy.config import Target
from longhaul_deploy.edge import Edge
from longhaul_deploy.identity import Identity
from longhaul_deploy.network import Network
from longhaul_deploy.production_rule import ProductionRuleProvider

__all__ = ["ACCESS_LOG_PREFIX", "PlatformStack"]

# Where the services' buckets write their S3 server access logs in the platform log bucket.
ACCESS_LOG_PREFIX = "s3-access"


class PlatformStack(Stack):
    """The VPC, the ECS cluster, the platform bus with its archive, the ALB with WAF and the
    function behind the APIs' production rules, the user pool, and the log bucket and alarm
    topic the service stacks use."""

    def __init__(self, scope: Construct, construct_id: str, *, target: Target) -> None:
        super().__init__(
            scope,
            construct_id,
            env=target.environment,
            description="Longhaul platform: network, cluster, bus, edge and identity",
            termination_protection=target.settings.protected,
        )
        settings = target.settings
        self.settings = settings
        self.log_bucket = self._log_bucket()
        self.network = Network(self, "Network", settings=settings, log_bucket=self.log_bucket)
        self.vpc = self.network.vpc
        # A known name: operators type it (`aws ecs list-services --cluster`), and the
        # services' task-protection grants and metrics name it without a cross-stack import.
        self.cluster_name = f"longhaul-{settings.name}"
        self.cluster = ecs.Cluster(
            self,
            "Cluster",
            cluster_name=self.cluster_name,
            vpc=self.vpc,
            container_insights_v2=ecs.ContainerInsights.ENABLED,
            enable_fargate_capacity_providers=True,
        )
        self.bus = events.EventBus(self, "Bus", event_bus_name=platform_bus_name(settings.name))
        self.bus.archive(
            "Archive",
            description="Every platform event, kept for replay",
            event_pattern=events.EventPattern(account=[self.account]),
            retention=settings.archive_retention,
        )
        self.edge = Edge(
            self,
            "Edge",
            vpc=self.vpc,
            certificate_arn=target.certificate_arn,
            log_bucket=self.log_bucket,
            protected=settings.protected,
        )
        if not target.has_certificate:
            Annotations.of(self.edge).add_warning_v2(
                "longhaul:certificate",
                "No certificateArn in the context: synthesized with a placeholder certificate, "
                "which a deployment refuses (cdk deploy -c certificateArn=arn:aws:acm:...).",
            )
        # The APIs' production rules are created through it: ECS, not CloudFormation, owns
        # their weights (production_rule_handler.py).
        self.production_rules = ProductionRuleProvider(
            self,
            "ProductionRules",
            load_balancer=self.edge.load_balancer,
            listener=self.edge.https_listener,
            settings=settings,
        )
        self.identity = Identity(self, "Identity", settings=settings)
        self.alarm_topic = self._alarm_topic(target.alarm_email)
        tag(self, service="platform", environment=settings.name)

        CfnOutput(self, "LoadBalancerDns", value=self.edge.load_balancer.load_balancer_dns_name)
        CfnOutput(self, "UserPoolId", value=self.identity.user_pool.user_pool_id)
        CfnOutput(self, "AppClientId", value=self.identity.client.user_pool_client_id)
        CfnOutput(self, "BusName", value=self.bus.event_bus_name)
        CfnOutput(self, "AlarmTopicArn", value=self.alarm_topic.topic_arn)

    def _log_bucket(self) -> s3.Bucket:
        # SSE-S3, not KMS: ALB access logs and S3 server access logs can only be delivered to
        # buckets with S3-managed encryption.
        bucket = s3.Bucket(
            self,
            "Logs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-logs",
                    expiration=Duration.days(self.settings.access_log_days),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
            removal_policy=self.settings.removal_policy,
        )
        acknowledge(
            bucket,
            "AwsSolutions-S1",
            "This is the platform's log bucket; logging its own accesses into itself would "
            "write a log for every log written.",
        )
        # The services' buckets log here. The grant names no bucket, so the platform stack
        # never depends on a service stack; the prefix and the account bound it.
        bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="S3ServerAccessLogs",
                principals=[iam.ServicePrincipal("logging.s3.amazonaws.com")],
                actions=["s3:PutObject"],
                resources=[bucket.arn_for_objects(f"{ACCESS_LOG_PREFIX}/*")],
                conditions={"StringEquals": {"aws:SourceAccount": self.account}},
            )
        )
        # VPC flow logs (network.py): written here explicitly, because a statement the log
        # service added by itself would be dropped by the next update of this policy.
        bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="VpcFlowLogs",
                principals=[iam.ServicePrincipal("delivery.logs.amazonaws.com")],
                actions=["s3:PutObject"],
                resources=[bucket.arn_for_objects(f"vpc-flow-logs/AWSLogs/{self.account}/*")],
                conditions={
                    "StringEquals": {
                        "aws:SourceAccount": self.account,
                        "s3:x-amz-acl": "bucket-owner-full-control",
                    }
                },
            )
        )
        return bucket

    def _alarm_topic(self, email: str | None) -> sns.Topic:
        key = kms.Key(
            self,
            "AlarmKey",
            description="Encrypts the platform's alarm topic",
            enable_key_rotation=True,
            removal_policy=self.settings.removal_policy,
        )
        # CloudWatch publishes the alarms: to the topic, and with the key it is encrypted by.
        cloudwatch = iam.ServicePrincipal(
            "cloudwatch.amazonaws.com",
            conditions={"StringEquals": {"aws:SourceAccount": self.account}},
        )
        key.grant(cloudwatch, "kms:Decrypt", "kms:GenerateDataKey")
        topic = sns.Topic(self, "Alarms", master_key=key, enforce_ssl=True)
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarms",
                principals=[cloudwatch],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
            )
        )
        if email:
            topic.add_subscription(subscriptions.EmailSubscription(email))
        return topic
