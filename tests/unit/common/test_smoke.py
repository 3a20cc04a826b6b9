"""The smoke test's parts without a platform: RFC 6238 codes for the smoke user's MFA, the
sign-in's challenges, the pool read from CDK's outputs, and a run that tries every service
and names each failed check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer

from longhaul.local.smoke import pool_from_outputs
from longhaul.smoke import SmokeFailed, Target, run_smoke, smoke_user_token, totp
from longhaul.smoke.auth import UserPool, enroll_totp
from tests.support.echo.spec import SPEC as ECHO

RFC_6238_KEY = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # base32 of "12345678901234567890"


@pytest.mark.parametrize(
    ("at", "code"),
    [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
    ],
)
def test_totp_matches_rfc_6238s_sha1_vectors(at: int, code: str) -> None:
    assert totp(RFC_6238_KEY, at, digits=8) == code
    assert totp(RFC_6238_KEY.lower().rstrip("="), at) == code[-6:]


class FakeCognito:
    def __init__(self, challenge: str | None) -> None:
        self.challenge = challenge
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def admin_initiate_auth(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("initiate", kwargs))
        if self.challenge:
            return {"ChallengeName": self.challenge, "Session": "s1", "ChallengeParameters": {}}
        return {"AuthenticationResult": {"AccessToken": "token-without-mfa"}}

    async def admin_respond_to_auth_challenge(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("respond", kwargs))
        return {"AuthenticationResult": {"AccessToken": "token-after-mfa"}}


class FakeSecrets:
    class exceptions:
        class ResourceNotFoundException(Exception):
            pass

    def __init__(self, value: dict[str, Any] | None) -> None:
        self.value = value

    async def get_secret_value(self, SecretId: str) -> dict[str, Any]:
        if self.value is None:
            raise self.exceptions.ResourceNotFoundException()
        return {"SecretString": json.dumps(self.value)}


POOL = UserPool(pool_id="us-east-1_abc", client_id="client")
USER = {"username": "smoke", "password": "Lh1!not-a-real-one"}


async def test_the_smoke_user_signs_in_with_the_admin_flow() -> None:
    cognito = FakeCognito(None)
    token = await smoke_user_token(cognito, FakeSecrets(USER), POOL, "longhaul/dev/smoke-user")
    assert token == "token-without-mfa"
    (_, call), *_ = cognito.calls
    assert call["AuthFlow"] == "ADMIN_USER_PASSWORD_AUTH"
    assert call["AuthParameters"] == {"USERNAME": "smoke", "PASSWORD": "Lh1!not-a-real-one"}


async def test_a_totp_challenge_is_answered_with_the_current_code() -> None:
    cognito = FakeCognito("SOFTWARE_TOKEN_MFA")
    secrets = FakeSecrets({**USER, "totp_secret": RFC_6238_KEY})
    assert await smoke_user_token(cognito, secrets, POOL, "id") == "token-after-mfa"
    _, respond = cognito.calls[1]
    assert respond["Session"] == "s1"
    code = respond["ChallengeResponses"]["SOFTWARE_TOKEN_MFA_CODE"]
    assert len(code) == 6
    assert code.isdigit()


@pytest.mark.parametrize(
    ("challenge", "secret", "message"),
    [
        ("SOFTWARE_TOKEN_MFA", USER, "asks smoke for a TOTP code; id has none"),
        ("MFA_SETUP", USER, "asks smoke for MFA_SETUP: the smoke user is not set up"),
        ("NEW_PASSWORD_REQUIRED", USER, "not set up"),
        (None, None, "no secret id: create the smoke user"),
        (None, {"user": "x"}, "is not the smoke user's JSON"),
    ],
)
async def test_a_smoke_user_not_set_up_fails_saying_so(
    challenge: str | None, secret: dict[str, Any] | None, message: str
) -> None:
    with pytest.raises(SmokeFailed, match=message):
        await smoke_user_token(FakeCognito(challenge), FakeSecrets(secret), POOL, "id")


def test_the_pool_comes_from_the_platform_stacks_outputs(tmp_path: Path) -> None:
    path = tmp_path / "outputs.json"
    path.write_text(
        json.dumps(
            {
                "longhaul-dev-media": {"ApiPath": "/media/"},
                "longhaul-dev-platform": {"UserPoolId": "eu-west-1_x", "AppClientId": "c1"},
            }
        )
    )
    assert pool_from_outputs(path) == UserPool(pool_id="eu-west-1_x", client_id="c1")
    path.write_text(json.dumps({"longhaul-dev-media": {"ApiPath": "/media/"}}))
    with pytest.raises(typer.BadParameter, match="no stack outputs UserPoolId and AppClientId"):
        pool_from_outputs(path)


def platform_answering(broken: str | None) -> httpx.MockTransport:
    """Two services behind one ALB: the one named `broken` is not ready."""

    def answer(request: httpx.Request) -> httpx.Response:
        service, _, path = request.url.path.lstrip("/").partition("/")
        if path == "readyz" and service == broken:
            return httpx.Response(503, json={"title": "not ready", "checks": {"table": "down"}})
        if path == "jobs" and "authorization" not in request.headers:
            return httpx.Response(401, json={"title": "Unauthorized"})
        if path == "jobs":
            assert request.headers["authorization"] == "Bearer t0ken"
            return httpx.Response(200, json={"jobs": [], "next_cursor": None})
        return httpx.Response(200, json={"status": "ok"})

    return httpx.MockTransport(answer)


async def test_a_run_tries_every_service_and_names_each_failed_check() -> None:
    first = ECHO.model_copy(update={"name": "first"})
    second = ECHO.model_copy(update={"name": "second"})
    targets = [Target(s, f"https://api.example.com/{s.name}") for s in (first, second)]
    lines: list[str] = []
    passed = await run_smoke(
        targets, "t0ken", timeout_s=5, say=lines.append, transport=platform_answering("first")
    )
    assert not passed
    out = "\n".join(lines)
    assert "FAIL  first        GET /readyz (its table, queue, bucket and bus answer): " in out
    assert "answered 503, not 200" in out
    assert "ok    second       GET /jobs as the smoke user" in out
    assert lines[-1].startswith("smoke FAILED for first (")


async def test_a_run_passes_when_every_check_holds() -> None:
    lines: list[str] = []
    targets = [Target(ECHO, "https://api.example.com/echo")]
    assert await run_smoke(
        targets, "t0ken", timeout_s=5, say=lines.append, transport=platform_answering(None)
    )
    assert lines[-1].startswith("smoke passed: 1 service(s)")


class EnrollingCognito(FakeCognito):
    """A pool that requires MFA: the first sign-in asks for MFA_SETUP."""

    async def associate_software_token(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("associate", kwargs))
        return {"SecretCode": RFC_6238_KEY, "Session": "s2"}

    async def verify_software_token(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("verify", kwargs))
        assert kwargs["UserCode"] == totp(RFC_6238_KEY)
        return {"Status": "SUCCESS", "Session": "s3"}

    async def admin_set_user_mfa_preference(self, **kwargs: Any) -> None:
        self.calls.append(("prefer", kwargs))


class StoringSecrets(FakeSecrets):
    async def put_secret_value(self, SecretId: str, SecretString: str) -> None:
        self.value = json.loads(SecretString)


async def test_enrolment_in_a_pool_requiring_mfa_sets_up_totp_in_the_first_session() -> None:
    cognito, secrets = EnrollingCognito("MFA_SETUP"), StoringSecrets(USER)
    assert await enroll_totp(cognito, secrets, POOL, "id") == "token-after-mfa"
    assert [name for name, _ in cognito.calls] == [
        "initiate",
        "associate",
        "verify",
        "respond",
        "prefer",
    ]
    assert cognito.calls[1][1] == {"Session": "s1"}
    assert cognito.calls[3][1]["ChallengeName"] == "MFA_SETUP"
    assert cognito.calls[3][1]["Session"] == "s3"
    assert secrets.value == {**USER, "totp_secret": RFC_6238_KEY}
