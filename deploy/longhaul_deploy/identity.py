"""Who may call the services: a Cognito user pool and the app client whose access tokens the
kit verifies (RS256 against the pool's JWKS, `token_use == access`, `client_id`), and the
group `admin` whose members reach every service's admin routes (every owner's jobs, the DLQ
and its redrive: longhaul.jobs.admin) and the console's admin view.

The console's sign-in (docs/console.md "Signing in") turns on the pool's hosted UI for that
same client (`enable_hosted_ui`): a Cognito prefix domain and the authorization-code grant
with PKCE, no secret (a public client in a page) and no implicit grant. The access tokens
it hands out carry the same `client_id` and `token_use: access`, so the services accept
them as they are."""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration
from aws_cdk import aws_cognito as cognito
from constructs import Construct

from longhaul.jobs.admin import ADMIN_GROUP  # the token's `cognito:groups` the routes check
from longhaul_deploy._utils import acknowledge
from longhaul_deploy.config import EnvSettings

__all__ = ["ADMIN_GROUP", "HOSTED_UI_SCOPES", "Identity"]

# The hosted UI's scopes: an access token needs none beyond `openid` (the services read its
# `sub`, `username`, `client_id` and `cognito:groups`, which every access token carries).
HOSTED_UI_SCOPES = ("openid",)


class Identity(Construct):
    """The platform's user pool, its app client and its admin group."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: EnvSettings) -> None:
        super().__init__(scope, construct_id)
        self.user_pool = cognito.UserPool(
            self,
            "UserPool",
            self_sign_up_enabled=False,
            sign_in_aliases=cognito.SignInAliases(username=True, email=True),
            auto_verify=cognito.AutoVerifiedAttrs(email=True),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            mfa=cognito.Mfa.REQUIRED,
            mfa_second_factor=cognito.MfaSecondFactor(sms=False, otp=True),
            password_policy=cognito.PasswordPolicy(
                min_length=12,
                require_lowercase=True,
                require_uppercase=True,
                require_digits=True,
                require_symbols=True,
                temp_password_validity=Duration.days(3),
            ),
            feature_plan=cognito.FeaturePlan.ESSENTIALS,
            deletion_protection=settings.protected,
            removal_policy=settings.removal_policy,
        )
        for rule in ("AwsSolutions-COG3", "AwsSolutions-COG8"):
            acknowledge(
                self.user_pool,
                rule,
                "Threat protection (advanced security) needs the Plus feature plan, billed per "
                "monthly active user; users are created by administrators only (no self "
                "sign-up) and must use TOTP MFA.",
            )
        # Members are added by an administrator (`aws cognito-idp admin-add-user-to-group`);
        # their access tokens name the group in `cognito:groups`.
        self.admin_group = cognito.CfnUserPoolGroup(
            self,
            "AdminGroup",
            user_pool_id=self.user_pool.user_pool_id,
            group_name=ADMIN_GROUP,
            description="Sees every owner's jobs and each service's DLQ, and redrives them",
        )
        self.client = self.user_pool.add_client(
            "App",
            # admin_user_password: the smoke test signs its user in with the admin flow and
            # its TOTP code (docs/pipeline.md); it needs the CI role's AdminInitiateAuth.
            auth_flows=cognito.AuthFlow(user_srp=True, admin_user_password=True),
            disable_o_auth=True,
            generate_secret=False,
            prevent_user_existence_errors=True,
            access_token_validity=Duration.hours(1),
            id_token_validity=Duration.hours(1),
            refresh_token_validity=Duration.days(30),
        )

    def enable_hosted_ui(self, *, domain_prefix: str, url: str) -> cognito.UserPoolDomain:
        """Sign-in through the pool's hosted UI for the app client, returning to `url` (the
        console's address) after signing in and after signing out: a Cognito prefix domain
        (`https://<domain_prefix>.auth.<region>.amazoncognito.com`, free) and the client's
        OAuth with the authorization-code grant only (with PKCE: the page sends a `code_challenge`,
        and Cognito then redeems the code only with its verifier), scopes
        `HOSTED_UI_SCOPES`."""
        self.domain = self.user_pool.add_domain(
            "Domain",
            cognito_domain=cognito.CognitoDomainOptions(domain_prefix=domain_prefix),
            managed_login_version=cognito.ManagedLoginVersion.CLASSIC_HOSTED_UI,
        )
        client = self.client.node.default_child
        assert isinstance(client, cognito.CfnUserPoolClient)
        client.allowed_o_auth_flows_user_pool_client = True
        client.allowed_o_auth_flows = ["code"]  # no implicit grant, no client credentials
        client.allowed_o_auth_scopes = list(HOSTED_UI_SCOPES)
        client.callback_ur_ls = [url]
        client.logout_ur_ls = [url]
        client.default_redirect_uri = url
        client.supported_identity_providers = ["COGNITO"]
        # In the platform stack's outputs, beside the pool and client ids.
        CfnOutput(self, "HostedUiUrl", value=self.domain.base_url())
        CfnOutput(self, "SignInRedirectUrl", value=url)
        return self.domain

    @property
    def issuer(self) -> str:
        """The `iss` of the pool's tokens, which the kit also derives its JWKS URL from."""
        return self.user_pool.user_pool_provider_url
