"""The service's declared secrets, in Secrets Manager under the service's key."""

from __future__ import annotations

from aws_cdk import aws_kms as kms
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from longhaul.spec import SecretSpec
from longhaul_deploy._utils import acknowledge
from longhaul_deploy.config import EnvSettings

__all__ = ["ServiceSecrets"]


class ServiceSecrets(Construct):
    """One secret per declared secret, created with a random value a person may replace."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        specs: tuple[SecretSpec, ...],
        key: kms.IKey,
        settings: EnvSettings,
    ) -> None:
        super().__init__(scope, construct_id)
        self.secrets: dict[str, secretsmanager.Secret] = {}
        for spec in specs:
            secret = secretsmanager.Secret(
                self,
                spec.name,
                description=spec.description or f"the service's {spec.name} secret",
                encryption_key=key,
                generate_secret_string=secretsmanager.SecretStringGenerator(
                    password_length=48, exclude_punctuation=True
                ),
                removal_policy=settings.removal_policy,
            )
            acknowledge(
                secret,
                "AwsSolutions-SMG4",
                "A declared secret is a value the service is given (a signing key, a third "
                "party's credential); rotating it needs that party's rotation function, so "
                "it is rotated by hand (docs/deploy.md).",
            )
            self.secrets[spec.name] = secret
