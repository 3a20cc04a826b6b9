"""The console's admin view in a real headless Chromium: a member of the `admin` group sees
every owner's jobs (an owner column) and the service's dead-letter queue with its messages,
redrives it after a confirm and sees the count drop; a plain user is offered no admin view
at all. And the console's dev sign-in offers the dev admin beside the dev user."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec

from longhaul.aws.clients import AwsClients
from longhaul.console.app import ConsoleConfig, create_app
from longhaul.jobs import JobState
from tests.browser.conftest import Stack
from tests.browser.test_console import sign_in, text_of, wait
from tests.conftest import REGION
from tests.integration.test_admin_routes import _dead_lettered
from tests.support.app import forge
from tests.support.workers import Jobs

Shot = Callable[[webdriver.Chrome, str], Path]


def open_admin(driver: webdriver.Chrome, stack: Stack) -> None:
    """The admin view, loaded: every service answered for the jobs and the DLQs."""
    driver.get(f"{stack.console.url}/#/admin")
    driver.refresh()  # a hash change alone does not reload a page already open
    wait(driver).until(
        lambda d: (
            d.find_element(By.ID, "view").get_attribute("data-jobs-loaded") == "true"
            and d.find_element(By.ID, "dlqs").get_attribute("data-loaded") == "true"
        )
    )


@pytest.mark.e2e
@pytest.mark.xdist_group("browser")
async def test_the_admin_sees_every_owners_jobs_and_redrives_the_dlq(
    browser: webdriver.Chrome, stack: Stack, screenshots: Shot
) -> None:
    """Two users' jobs are both listed to the admin with their owners; a failed job's
    dead letter is listed with its reason; Redrive, once confirmed, empties the DLQ on
    the page (the count drops to 0) and the job is queued again."""
    alice_sub, alice = stack.user("alice")
    bob_sub, bob = stack.user("bob")
    alices, bobs = stack.submit(alice, steps=1), stack.submit(bob, steps=1)
    aws = AwsClients(REGION)
    try:
        jobs = Jobs(aws, stack.platform.env)
        failed = await _dead_lettered(aws, jobs, owner=f"carol-{uuid.uuid4().hex[:8]}")
    finally:
        await aws.close()
    admin = forge(
        stack.platform.auth,
        sub=f"ops-{uuid.uuid4().hex[:8]}",
        username="ops",
        **{"cognito:groups": ["admin"]},
    )

    sign_in(browser, stack.console.url, admin, "ops")
    assert text_of(browser, "#who-admin").lower() == "admin"
    browser.find_element(By.ID, "nav-admin").click()
    open_admin(browser, stack)
    owners = {
        str(row.get_attribute("data-job-id")): str(row.get_attribute("data-owner"))
        for row in browser.find_elements(By.CSS_SELECTOR, "tr.admin-job-row")
    }
    assert owners[alices] == alice_sub
    assert owners[bobs] == bob_sub
    assert failed in owners
    assert "most recent state change first" in text_of(browser, "#admin-order")
    assert text_of(browser, "#dlq-count-echo") == "1"
    (message,) = browser.find_elements(By.CSS_SELECTOR, "#dlq-echo tr.dlq-message")
    assert message.get_attribute("data-job-id") == failed
    assert "failed after 3 attempts: boom" in message.text
    screenshots(browser, "admin-view")

    browser.find_element(By.ID, "redrive-echo").click()
    wait(browser).until(ec.alert_is_present()).accept()
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "dlq-count-echo"), "0"))
    result = text_of(browser, "#redrive-result-echo")
    assert "1 job(s) reset" in result
    assert "moved 1 message(s) in 1 call(s)" in result
    assert not browser.find_elements(By.CSS_SELECTOR, "#dlq-echo tr.dlq-message")
    aws = AwsClients(REGION)
    try:
        assert (await Jobs(aws, stack.platform.env).get(failed)).state is JobState.QUEUED
    finally:
        await aws.close()


@pytest.mark.e2e
@pytest.mark.xdist_group("browser")
def test_a_plain_user_is_offered_no_admin_view(browser: webdriver.Chrome, stack: Stack) -> None:
    """No admin link, no admin badge, and #/admin by hand draws no admin data: the page
    says the view is for the admin group (the API would answer 403 anyway)."""
    _, token = stack.user("dora")
    sign_in(browser, stack.console.url, token, "dora")
    assert browser.find_elements(By.ID, "nav-jobs")
    assert not browser.find_elements(By.ID, "nav-admin")
    assert not browser.find_elements(By.ID, "who-admin")
    browser.get(f"{stack.console.url}/#/admin")
    browser.refresh()
    assert "admin group" in text_of(browser, "#not-admin")
    assert not browser.find_elements(By.ID, "dlqs")
    assert not browser.find_elements(By.CSS_SELECTOR, "tr.admin-job-row")


async def test_the_dev_sign_in_offers_the_dev_admin_beside_the_dev_user() -> None:
    """Under the dev runner the console hands out both local users' tokens, by name; the
    dev admin's is on offer only when configured, and an unknown user is a 404."""

    async def dev() -> str:
        return "dev-token"

    async def admin() -> str:
        return "admin-token"

    config = ConsoleConfig(services={}, dev_token=dev, dev_admin_token=admin)
    transport = httpx.ASGITransport(app=create_app(config))
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as client:
        offered = (await client.get("/console/config")).json()["dev_users"]
        plain = (await client.get("/dev-token")).json()
        chief = (await client.get("/dev-token", params={"user": "admin"})).json()
        unknown = await client.get("/dev-token", params={"user": "root"})
    assert offered == ["dev", "admin"]
    assert (plain["token"], plain["user"]) == ("dev-token", "dev")
    assert (chief["token"], chief["user"]) == ("admin-token", "admin")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
