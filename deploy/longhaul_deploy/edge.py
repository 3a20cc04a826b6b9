"""The platform's edge: an internet-facing ALB with HTTPS only (HTTP redirects), access
logs, and an AWS WAF web ACL of managed rule groups in front of it."""

from __future__ import annotations

import json

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from longhaul_deploy._utils import acknowledge

__all__ = ["MANAGED_RULE_GROUPS", "Edge"]

# (name, rules of the group only counted, not blocked)
MANAGED_RULE_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("AWSManagedRulesAmazonIpReputationList", ()),
    # The kit limits bodies itself (1 MiB, problem+json) and uploads go straight to S3 by
    # presigned URL, so the common set's 8 KB body limit would only refuse valid requests.
    ("AWSManagedRulesCommonRuleSet", ("SizeRestrictions_BODY",)),
    ("AWSManagedRulesKnownBadInputsRuleSet", ()),
)
# Requests per 5 minutes from one IP before WAF blocks it.
RATE_LIMIT = 2000

_NOT_FOUND = json.dumps(
    {"type": "about:blank", "title": "Not Found", "status": 404, "detail": "no such service"}
)


class Edge(Construct):
    """The load balancer every service's API sits behind, by path (`/<service>/...`)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        certificate_arn: str,
        log_bucket: s3.IBucket,
        protected: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="The platform ALB: HTTPS and HTTP (redirected) in, the task port out",
            allow_all_outbound=False,
        )
        # No egress here: each service stack adds the rule from this group to its own API
        # tasks when it attaches them, so no rule in this stack names a service.
        acknowledge(
            self.security_group,
            "AwsSolutions-EC23",
            "The public entry point of the platform: 443 (and 80, which only redirects) from "
            "anywhere is its purpose; AWS WAF filters what reaches the listeners.",
        )
        self.load_balancer = elbv2.ApplicationLoadBalancer(
            self,
            "LoadBalancer",
            vpc=vpc,
            internet_facing=True,
            security_group=self.security_group,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            drop_invalid_header_fields=True,
            deletion_protection=protected,
        )
        self.load_balancer.log_access_logs(log_bucket, "alb")
        self.https_listener = self.load_balancer.add_listener(
            "Https",
            port=443,
            protocol=elbv2.ApplicationProtocol.HTTPS,
            certificates=[elbv2.ListenerCertificate.from_arn(certificate_arn)],
            ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS,
            default_action=elbv2.ListenerAction.fixed_response(
                404, content_type="application/problem+json", message_body=_NOT_FOUND
            ),
            open=True,
        )
        self.load_balancer.add_redirect(source_port=80, target_port=443)
        self.web_acl = self._web_acl()
        wafv2.CfnWebACLAssociation(
            self,
            "WebAclAssociation",
            resource_arn=self.load_balancer.load_balancer_arn,
            web_acl_arn=self.web_acl.attr_arn,
        )

    def _web_acl(self) -> wafv2.CfnWebACL:
        def visibility(name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
            return wafv2.CfnWebACL.VisibilityConfigProperty(
                cloud_watch_metrics_enabled=True, metric_name=name, sampled_requests_enabled=True
            )

        rules = [
            wafv2.CfnWebACL.RuleProperty(
                name=group,
                priority=priority,
                override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                statement=wafv2.CfnWebACL.StatementProperty(
                    managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                        vendor_name="AWS",
                        name=group,
                        rule_action_overrides=[
                            wafv2.CfnWebACL.RuleActionOverrideProperty(
                                name=rule,
                                action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={}),
                            )
                            for rule in counted
                        ]
                        or None,
                    )
                ),
                visibility_config=visibility(group),
            )
            for priority, (group, counted) in enumerate(MANAGED_RULE_GROUPS)
        ]
        rules.append(
            wafv2.CfnWebACL.RuleProperty(
                name="RatePerIp",
                priority=len(rules),
                action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                statement=wafv2.CfnWebACL.StatementProperty(
                    rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                        limit=RATE_LIMIT, aggregate_key_type="IP"
                    )
                ),
                visibility_config=visibility("RatePerIp"),
            )
        )
        return wafv2.CfnWebACL(
            self,
            "WebAcl",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=visibility("longhaul-edge"),
            rules=rules,
        )
