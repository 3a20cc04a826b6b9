"""A service's feature flags: one SSM parameter (a JSON object), created empty, read by the
kit through the task role (longhaul.flags; docs/flags.md).

The stack creates the parameter with the value `{}` and never writes it again: CloudFormation
updates a resource only when its template changes, so a value an operator put (`longhaul
flags set <service> ... --env <env>`, or `aws ssm put-parameter --overwrite`) survives every
later deployment. The defaults live in the service's code, so the template's value never
has to change; changing it here would overwrite what operators set, in every environment.
"""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from longhaul.flags import flags_parameter_name

__all__ = ["EMPTY", "ServiceFlags"]

EMPTY = "{}"  # every flag at the default the service declares


class ServiceFlags(Construct):
    """The parameter holding one service's feature flags."""

    def __init__(self, scope: Construct, construct_id: str, *, env: str, service: str) -> None:
        super().__init__(scope, construct_id)
        # The local platform's name too, so `longhaul flags ... --env <env>` finds it.
        self.parameter_name = flags_parameter_name(env, service)
        self.parameter = ssm.StringParameter(
            self,
            "Parameter",
            parameter_name=self.parameter_name,
            string_value=EMPTY,
            description=f"Feature flags of longhaul {service} ({env}): a JSON object of "
            "name -> true/false or text, read by every task within 30 s (docs/flags.md). "
            "Operators change it; deployments never do.",
            tier=ssm.ParameterTier.STANDARD,
        )

    def grant_read(self, role: iam.IRole) -> None:
        """Let `role` read this parameter, and nothing else of SSM's."""
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["ssm:GetParameter"], resources=[self.parameter.parameter_arn]
            )
        )
