"""The platform's network: a VPC over two AZs, NAT for egress, gateway endpoints for S3 and
DynamoDB, and flow logs.

Egress goes through NAT gateways rather than interface endpoints: the tasks reach ECR,
CloudWatch Logs, SQS, EventBridge, Secrets Manager, KMS and Cognito's JWKS (which has no
endpoint), so endpoints would cost about ten times two AZs of hourly charges before a byte
moves, against one NAT gateway (dev) or two (prod). S3 and DynamoDB, where the bulk of the
bytes go, use free gateway endpoints. See docs/deploy.md for the figures.
"""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_s3 as s3
from constructs import Construct

from longhaul_deploy.config import EnvSettings

__all__ = ["Network"]


class Network(Construct):
    """The VPC the platform's load balancer and every service's tasks live in."""

    def __init__(
        self, scope: Construct, construct_id: str, *, settings: EnvSettings, log_bucket: s3.IBucket
    ) -> None:
        super().__init__(scope, construct_id)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=2,
            nat_gateways=settings.nat_gateways,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24
                ),
                ec2.SubnetConfiguration(
                    name="tasks", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=20
                ),
            ],
            gateway_endpoints={
                "S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3),
                "DynamoDB": ec2.GatewayVpcEndpointOptions(
                    service=ec2.GatewayVpcEndpointAwsService.DYNAMODB
                ),
            },
            flow_logs={
                "FlowLogs": ec2.FlowLogOptions(
                    destination=ec2.FlowLogDestination.to_s3(log_bucket, "vpc-flow-logs/"),
                    traffic_type=ec2.FlowLogTrafficType.REJECT,
                )
            },
            # Left as AWS creates it: restricting it takes a custom-resource Lambda, and no
            # resource here uses the default security group.
            restrict_default_security_group=False,
        )
