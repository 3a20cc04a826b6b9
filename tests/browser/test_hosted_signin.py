"""Signing in to the console through a hosted UI (Cognito's on AWS), in a real headless
Chromium: the page runs the authorization-code flow with PKCE against a small fake
authorization server (tests/support/fake_oauth.py) whose token endpoint redeems a code only
with the verifier of the challenge it was issued for, and answers an access token the echo
API accepts (signed as moto's pool signs them). Sign-in completes and lists the user's jobs;
a tampered state, an `error` answer and a refused code each leave one clear line and nobody
signed in; sign-out clears the token and goes through the hosted UI's /logout."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from longhaul.aws.clients import AwsClients
from tests.browser.conftest import Server
from tests.conftest import REGION, Platform, new_platform
from tests.support.app import echo_environment, forge
from tests.support.fake_oauth import FakeOAuth, s256
from tests.support.moto import MotoServer
from tests.support.workers import FAST

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]

WAIT_S = 60.0  # an upper bound on waiting for the page, never a claim about speed
USERNAME = "hana"
TOKEN_KEY = "longhaul.token"


@dataclass
class Hosted:
    """The echo API, the fake hosted UI and the console configured to sign in through it."""

    platform: Platform
    api: Server
    console: Server
    oauth: FakeOAuth
    sub: str
    token: str  # the user's own token, to submit a job directly

    @property
    def page(self) -> str:
        """The console's address: the redirect and sign-out URL."""
        return f"{self.console.url}/"


@pytest.fixture(scope="module")
async def hosted(
    moto: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Hosted]:
    """A platform of its own, the echo API and the console as real processes, the console's
    hosted UI the fake (in this process, on a free loopback port); all stopped at the end."""
    aws = AwsClients(REGION)
    try:
        platform = await new_platform(aws, moto.endpoint)
    finally:
        await aws.close()
    logs = tmp_path_factory.mktemp("hosted-signin")
    sub = f"{USERNAME}-{uuid.uuid4().hex[:8]}"
    oauth = FakeOAuth(
        client_id=platform.auth.client_id,
        mint=lambda: forge(platform.auth, sub=sub, username=USERNAME),
    )
    api_env = {
        **echo_environment(platform.env, platform.endpoint, platform.auth, role="api"),
        **FAST,
    }
    with oauth.serve():
        api = Server("echo-api", ["-m", "tests.support.echo", "--role", "api"], api_env, logs)
        try:
            console = Server(
                "console",
                ["-m", "longhaul.console"],
                {
                    "LONGHAUL_CONSOLE_SERVICES": json.dumps({"echo": api.url}),
                    "LONGHAUL_CONSOLE_AUTH_URL": oauth.url,
                    "LONGHAUL_CONSOLE_CLIENT_ID": platform.auth.client_id,
                },
                logs,
            )
            try:
                api.wait_healthy()
                console.wait_healthy()
                yield Hosted(platform, api, console, oauth, sub, oauth.mint())
            finally:
                console.stop()
        finally:
            api.stop()


@pytest.fixture
def fresh(browser: webdriver.Chrome, hosted: Hosted) -> Iterator[webdriver.Chrome]:
    """The console's page with nobody signed in and the fake behaving; put back after."""
    browser.get(hosted.page)
    browser.execute_script("sessionStorage.clear();")
    yield browser
    hosted.oauth.tamper_state = False
    hosted.oauth.deny = None
    hosted.oauth.refuse_codes = False


def wait(driver: webdriver.Chrome) -> WebDriverWait[webdriver.Chrome]:
    return WebDriverWait(
        driver, WAIT_S, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,)
    )


def start_sign_in(driver: webdriver.Chrome, hosted: Hosted) -> None:
    """Open the console signed out and press the hosted "Sign in"."""
    driver.get(f"{hosted.page}#/")
    driver.refresh()
    button = wait(driver).until(ec.element_to_be_clickable((By.ID, "hosted-sign-in")))
    assert driver.find_element(By.ID, "who").text == "Not signed in"
    button.click()


def stored_token(driver: webdriver.Chrome) -> str | None:
    value = driver.execute_script(f"return sessionStorage.getItem('{TOKEN_KEY}');")
    return None if value is None else str(value)


def test_the_hosted_sign_in_completes_and_lists_the_users_jobs(
    fresh: webdriver.Chrome, hosted: Hosted
) -> None:
    """Authorize, come back with a code, redeem it with the PKCE verifier (the fake checks
    S256(verifier) is the challenge), keep the token: the page shows the user and their
    job, and the address bar no longer carries the code or the state. Sign out clears the
    token and goes through the hosted UI's /logout back to the console."""
    driver = fresh
    job_id = _submit(hosted)
    before = len(hosted.oauth.redemptions)
    start_sign_in(driver, hosted)
    wait(driver).until(ec.text_to_be_present_in_element((By.ID, "who-name"), USERNAME))
    wait(driver).until(
        lambda d: d.find_element(By.ID, "view").get_attribute("data-loaded") == "true"
    )
    rows = driver.find_elements(By.CSS_SELECTOR, "tr.job-row")
    assert [row.get_attribute("data-job-id") for row in rows] == [job_id]
    assert "code=" not in driver.current_url
    assert "state=" not in driver.current_url
    assert driver.current_url.startswith(hosted.page)

    (asked,) = hosted.oauth.authorizations[-1:]
    assert asked["response_type"] == "code"
    assert asked["client_id"] == hosted.platform.auth.client_id
    assert asked["redirect_uri"] == hosted.page
    assert asked["scope"] == "openid"
    assert asked["code_challenge_method"] == "S256"
    assert len(asked["state"]) >= 32
    (redeemed,) = hosted.oauth.redemptions[before:]
    assert redeemed.status == 200
    assert redeemed.form["grant_type"] == "authorization_code"
    assert redeemed.form["redirect_uri"] == hosted.page
    verifier = redeemed.form["code_verifier"]
    assert verifier != asked["code_challenge"]
    assert s256(verifier) == asked["code_challenge"] == redeemed.challenge
    assert stored_token(driver)  # kept as the paste path keeps it
    leftovers = driver.execute_script(
        "return Object.keys(sessionStorage).filter(k => k.startsWith('longhaul.oauth.'));"
    )
    assert leftovers == []  # the state and verifier are used once

    driver.find_element(By.ID, "sign-out").click()
    wait(driver).until(ec.text_to_be_present_in_element((By.ID, "who"), "Not signed in"))
    assert stored_token(driver) is None
    assert hosted.oauth.logouts[-1] == {
        "client_id": hosted.platform.auth.client_id,
        "logout_uri": hosted.page,
    }


@pytest.mark.parametrize(
    ("fault", "line"),
    [
        ("tamper_state", "state mismatch"),
        ("deny", "access_denied"),
        ("refuse_codes", "refused the code (HTTP 400: invalid_grant)"),
    ],
)
def test_a_failed_hosted_sign_in_is_one_clear_line_and_signs_nobody_in(
    fresh: webdriver.Chrome, hosted: Hosted, fault: str, line: str
) -> None:
    """A state that is not the one this tab sent (never redeemed), an `error` instead of a
    code, or a code the token endpoint refuses: one line in the sign-in panel, no token
    kept, no user in the header, no jobs asked for, a clean address bar."""
    driver = fresh
    if fault == "deny":
        hosted.oauth.deny = "access_denied"
    else:
        setattr(hosted.oauth, fault, True)
    before = len(hosted.oauth.redemptions)
    start_sign_in(driver, hosted)
    error = wait(driver).until(ec.visibility_of_element_located((By.ID, "signin-error")))
    wait(driver).until(lambda d: error.text.startswith("Sign-in failed:"))
    assert line in error.text
    assert error.text.count("\n") == 0
    assert stored_token(driver) is None
    assert driver.find_element(By.ID, "who").text == "Not signed in"
    assert not driver.find_elements(By.ID, "who-name")
    assert driver.find_element(By.ID, "view").text == "Sign in to see your jobs."
    assert "code=" not in driver.current_url
    assert "state=" not in driver.current_url
    redeemed = hosted.oauth.redemptions[before:]
    if fault == "refuse_codes":
        assert [r.status for r in redeemed] == [400]
    else:
        assert redeemed == []  # a tampered state or an error is never taken to /oauth2/token


def _submit(hosted: Hosted) -> str:
    """A job of the signed-in user, submitted to the echo API directly."""
    answer = httpx.post(
        f"{hosted.api.url}/jobs",
        json={"type": "work", "payload": {"steps": 1}},
        headers={"Authorization": f"Bearer {hosted.token}"},
        timeout=30,
    )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])
