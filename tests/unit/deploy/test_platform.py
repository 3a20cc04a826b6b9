"""The platform stack: two-AZ VPC with gateway endpoints and NAT, the cluster, the bus and
its archive, the HTTPS ALB with WAF, the user pool, and the alarm topic."""

from __future__ import annotations

from aws_cdk.assertions import Match

from longhaul.spec import platform_bus_name
from longhaul_deploy.edge import MANAGED_RULE_GROUPS, RATE_LIMIT
from tests.unit.deploy._template import one, policy_actions, ref
from tests.unit.deploy.conftest import CERTIFICATE, Synthesized


def test_vpc_spans_two_azs_with_public_and_task_subnets(dev: Synthesized) -> None:
    subnets = dev.resources("platform", "AWS::EC2::Subnet").values()
    zones = {str(s["Properties"]["AvailabilityZone"]) for s in subnets}
    public = [s for s in subnets if s["Properties"]["MapPublicIpOnLaunch"]]
    assert (len(subnets), len(zones), len(public)) == (4, 2, 2)


def test_vpc_has_gateway_endpoints_for_s3_and_dynamodb_and_no_interface_endpoints(
    dev: Synthesized,
) -> None:
    endpoints = dev.resources("platform", "AWS::EC2::VPCEndpoint").values()
    services = sorted(e["Properties"]["ServiceName"]["Fn::Join"][1][-1] for e in endpoints)
    assert services == [".dynamodb", ".s3"]
    assert {e["Properties"]["VpcEndpointType"] for e in endpoints} == {"Gateway"}


def test_nat_gateways_are_one_in_dev_and_one_per_az_in_prod(
    dev: Synthesized, prod: Synthesized
) -> None:
    dev.template("platform").resource_count_is("AWS::EC2::NatGateway", 1)
    prod.template("platform").resource_count_is("AWS::EC2::NatGateway", 2)


def test_vpc_flow_logs_go_to_the_log_bucket(dev: Synthesized) -> None:
    dev.template("platform").has_resource_properties(
        "AWS::EC2::FlowLog", {"LogDestinationType": "s3", "ResourceType": "VPC"}
    )


def test_cluster_has_container_insights_and_both_fargate_capacity_providers(
    dev: Synthesized,
) -> None:
    template = dev.template("platform")
    template.has_resource_properties(
        "AWS::ECS::Cluster",
        {
            "ClusterName": "longhaul-dev",
            "ClusterSettings": [{"Name": "containerInsights", "Value": "enabled"}],
        },
    )
    template.has_resource_properties(
        "AWS::ECS::ClusterCapacityProviderAssociations",
        {"CapacityProviders": ["FARGATE", "FARGATE_SPOT"]},
    )


def test_bus_is_named_for_the_environment_and_archived_for_replay(
    dev: Synthesized, prod: Synthesized
) -> None:
    for app, days in ((dev, 7), (prod, 90)):
        template = app.template("platform")
        bus_id, _ = one(app.resources("platform", "AWS::Events::EventBus"))
        template.has_resource_properties(
            "AWS::Events::EventBus", {"Name": platform_bus_name(app.env)}
        )
        template.has_resource_properties(
            "AWS::Events::Archive",
            {"RetentionDays": days, "SourceArn": {"Fn::GetAtt": [bus_id, "Arn"]}},
        )


def test_alb_listens_https_with_the_certificate_and_redirects_http(prod: Synthesized) -> None:
    template = prod.template("platform")
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener",
        {
            "Port": 443,
            "Protocol": "HTTPS",
            "Certificates": [{"CertificateArn": CERTIFICATE}],
            "SslPolicy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
        },
    )
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener",
        {
            "Port": 80,
            "Protocol": "HTTP",
            "DefaultActions": [
                {
                    "Type": "redirect",
                    "RedirectConfig": {
                        "Port": "443",
                        "Protocol": "HTTPS",
                        "StatusCode": "HTTP_301",
                    },
                }
            ],
        },
    )


def test_alb_writes_access_logs_and_drops_invalid_headers(
    dev: Synthesized, prod: Synthesized
) -> None:
    for app, protected in ((dev, "false"), (prod, "true")):
        attributes = one(app.resources("platform", "AWS::ElasticLoadBalancingV2::LoadBalancer"))[1][
            "Properties"
        ]["LoadBalancerAttributes"]
        values = {a["Key"]: a["Value"] for a in attributes}
        assert values["access_logs.s3.enabled"] == "true"
        assert values["routing.http.drop_invalid_header_fields.enabled"] == "true"
        assert values["deletion_protection.enabled"] == protected


def test_waf_runs_the_managed_rule_groups_and_a_rate_limit_on_the_alb(dev: Synthesized) -> None:
    template = dev.template("platform")
    _, acl = one(dev.resources("platform", "AWS::WAFv2::WebACL"))
    rules = acl["Properties"]["Rules"]
    managed = [
        r["Statement"]["ManagedRuleGroupStatement"]["Name"]
        for r in rules
        if "ManagedRuleGroupStatement" in r["Statement"]
    ]
    assert managed == [name for name, _ in MANAGED_RULE_GROUPS]
    rate = [r for r in rules if "RateBasedStatement" in r["Statement"]]
    assert rate[0]["Statement"]["RateBasedStatement"]["Limit"] == RATE_LIMIT
    assert acl["Properties"]["Scope"] == "REGIONAL"
    alb_id, _ = one(dev.resources("platform", "AWS::ElasticLoadBalancingV2::LoadBalancer"))
    template.has_resource_properties("AWS::WAFv2::WebACLAssociation", {"ResourceArn": ref(alb_id)})


def test_user_pool_requires_mfa_and_strong_passwords_and_the_client_has_no_secret(
    dev: Synthesized, prod: Synthesized
) -> None:
    for app, protection in ((dev, "INACTIVE"), (prod, "ACTIVE")):
        template = app.template("platform")
        template.has_resource_properties(
            "AWS::Cognito::UserPool",
            {
                "MfaConfiguration": "ON",
                "EnabledMfas": ["SOFTWARE_TOKEN_MFA"],
                "AdminCreateUserConfig": {"AllowAdminCreateUserOnly": True},
                "Policies": {"PasswordPolicy": Match.object_like({"MinimumLength": 12})},
                "DeletionProtection": protection,
            },
        )
        template.has_resource_properties(
            "AWS::Cognito::UserPoolClient",
            {
                "GenerateSecret": False,
                "ExplicitAuthFlows": Match.array_with(["ALLOW_USER_SRP_AUTH"]),
            },
        )


def test_alarm_topic_is_encrypted_and_mails_the_context_address(
    dev: Synthesized, prod: Synthesized
) -> None:
    key_id, _ = one(prod.resources("platform", "AWS::KMS::Key"))
    prod.template("platform").has_resource_properties(
        "AWS::SNS::Topic", {"KmsMasterKeyId": {"Fn::GetAtt": [key_id, "Arn"]}}
    )
    prod.template("platform").has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "ops@example.com"}
    )
    dev.template("platform").resource_count_is("AWS::SNS::Subscription", 0)


def test_every_kms_key_rotates(any_app: Synthesized) -> None:
    for name in any_app.templates:
        for key in any_app.resources(name, "AWS::KMS::Key").values():
            assert key["Properties"]["EnableKeyRotation"] is True


def test_every_resource_that_takes_tags_carries_the_cost_allocation_tags(
    any_app: Synthesized,
) -> None:
    for name in any_app.templates:
        service = "platform" if name == "platform" else name
        expected = {"project": "longhaul", "service": service, "environment": any_app.env}
        tagged = 0
        for resource in any_app.raw(name)["Resources"].values():
            tags = resource.get("Properties", {}).get("Tags")
            if isinstance(tags, list):
                values = {t["Key"]: t["Value"] for t in tags}
                assert {k: values.get(k) for k in expected} == expected, resource["Type"]
                tagged += 1
        assert tagged > 5


def test_log_bucket_takes_alb_flow_and_s3_access_logs_and_nothing_in_plain_http(
    dev: Synthesized,
) -> None:
    (policy,) = dev.resources("platform", "AWS::S3::BucketPolicy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    writers = {
        str(s["Principal"].get("Service") or s["Principal"].get("AWS")): str(s["Resource"])
        for s in statements
        if s["Effect"] == "Allow" and s["Action"] == "s3:PutObject"
    }
    assert "/s3-access/*" in writers["logging.s3.amazonaws.com"]
    assert "vpc-flow-logs/AWSLogs/" in str(
        [s["Resource"] for s in statements if s.get("Sid") == "VpcFlowLogs"]
    )
    assert any("/alb/AWSLogs/" in resource for resource in writers.values())
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in statements
    )
    dev.template("platform").has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                ]
            }
        },
    )


def test_cloudwatch_may_publish_alarms_to_the_encrypted_topic(dev: Synthesized) -> None:
    dev.template("platform").has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Sid": "CloudWatchAlarms",
                                "Action": "sns:Publish",
                                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                            }
                        )
                    ]
                )
            }
        },
    )


def test_the_production_rule_function_edits_only_the_platform_load_balancers_rules(
    dev: Synthesized,
) -> None:
    functions = dev.resources("platform", "AWS::Lambda::Function")
    _, function = one(functions)
    assert function["Properties"]["Runtime"] == "python3.14"
    assert function["Properties"]["Handler"] == "production_rule_handler.handler"
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    rules = (
        "arn:<AWS::Partition>:elasticloadbalancing:us-east-1:<AWS::AccountId>:listener-rule/"
        "<EdgeLoadBalancer9EA98EDF.LoadBalancerFullName>/*"
    )
    (https,) = [
        k
        for k, v in dev.resources("platform", "AWS::ElasticLoadBalancingV2::Listener").items()
        if v["Properties"]["Port"] == 443
    ]
    (logs,) = [
        k for k in dev.resources("platform", "AWS::Logs::LogGroup") if "ProductionRules" in k
    ]
    assert policy_actions(dev.raw("platform"), role) == {
        "elasticloadbalancing:CreateRule": {f"<{https}>", rules},
        "elasticloadbalancing:ModifyRule": {rules},
        "elasticloadbalancing:SetRulePriorities": {rules},
        "elasticloadbalancing:DeleteRule": {rules},
        "elasticloadbalancing:DescribeRules": {"*"},
        "logs:CreateLogStream": {f"<{logs}.Arn>"},
        "logs:PutLogEvents": {f"<{logs}.Arn>"},
    }
