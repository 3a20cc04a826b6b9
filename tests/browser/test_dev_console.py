"""`make dev` serves the console: the runner starts it on its port beside the services and
names it in its banner, the page's dev sign-in gets the local dev user's token from the
local user pool, and with it the console lists the dev user's jobs."""

from __future__ import annotations

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec

from longhaul.local.runner import CONSOLE_PORT
from tests.browser.test_console import listed, wait
from tests.support.dev import Runner
from tests.support.moto import free_port

# The dev runner binds the services' fixed ports: one runner at a time, under xdist too.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("dev-runner")]

CONSOLE = f"http://127.0.0.1:{CONSOLE_PORT}"


def test_make_dev_serves_the_console_and_signs_the_dev_user_in(browser: webdriver.Chrome) -> None:
    """The console is up once the runner says so, its dev sign-in works, its list shows a
    job the dev user submitted through it, and it stops with everything else."""
    runner = Runner(free_port())
    try:
        runner.wait_for(lambda: runner.printed("press Ctrl-C to stop everything"), "banner", 120)
        assert runner.printed(f"console       {CONSOLE}/")
        browser.get(f"{CONSOLE}/#/")
        dev_only = wait(browser).until(ec.visibility_of_element_located((By.ID, "use-dev-token")))
        assert "Local dev runner only" in browser.find_element(By.ID, "signin").text
        dev_only.click()
        wait(browser).until(ec.text_to_be_present_in_element((By.ID, "who-name"), "dev"))
        token = browser.execute_script("return sessionStorage.getItem('longhaul.token');")
        # Submitted through the console's forwarding, with the token the page holds.
        answer = httpx.post(
            f"{CONSOLE}/api/echo/jobs",
            json={"type": "work", "payload": {"steps": 1, "step_s": 0}},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert answer.status_code == 202, answer.text
        browser.find_element(By.ID, "refresh").click()
        wait(browser).until(lambda d: answer.json()["id"] in listed(d))
    finally:
        runner.stop()
    assert runner.printed("stopped everything")
