"""The web console in a real headless Chromium: a caller signs in with their token, sees a
new job in the list, watches its progress reach 100% on the job page without a reload (fed
by the job's event stream), cancels a long job, filters by state and type, and a second
user sees nothing of the first one's jobs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.browser.conftest import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]

WAIT_S = 60.0  # an upper bound on waiting for the page, never a claim about speed
Shot = Callable[[webdriver.Chrome, str], Path]


def wait(driver: webdriver.Chrome) -> WebDriverWait[webdriver.Chrome]:
    """Wait for the page; an element redrawn while it is read is read again."""
    return WebDriverWait(
        driver, WAIT_S, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,)
    )


def text_of(driver: webdriver.Chrome, css: str) -> str:
    """The element's text, read again if the page redrew it meanwhile."""
    return str(
        wait(driver).until(lambda d: d.find_element(By.CSS_SELECTOR, css).text or " ")
    ).strip()


def sign_in(driver: webdriver.Chrome, console: str, token: str, username: str) -> None:
    """Sign in through the page at `console`: paste the token into the sign-in field."""
    driver.get(f"{console}/#/")
    wait(driver).until(
        lambda d: d.find_elements(By.ID, "token-input") or d.find_elements(By.ID, "switch-user")
    )
    if driver.find_elements(By.ID, "switch-user"):
        driver.find_element(By.ID, "switch-user").click()
    field = wait(driver).until(ec.visibility_of_element_located((By.ID, "token-input")))
    field.clear()
    field.send_keys(token)
    driver.find_element(By.ID, "use-token").click()
    wait(driver).until(ec.text_to_be_present_in_element((By.ID, "who-name"), username))


def open_list(driver: webdriver.Chrome, stack: Stack, query: str = "") -> None:
    """The jobs list, loaded (every service answered)."""
    driver.get(f"{stack.console.url}/#/{query}")
    driver.refresh()  # a hash change alone does not reload a page already open
    wait(driver).until(
        lambda d: d.find_element(By.ID, "view").get_attribute("data-loaded") == "true"
    )


def listed(driver: webdriver.Chrome) -> list[str]:
    """The ids of the jobs the list shows."""
    rows = driver.find_elements(By.CSS_SELECTOR, "tr.job-row")
    return [str(row.get_attribute("data-job-id")) for row in rows]


def test_a_new_job_is_listed_and_its_progress_reaches_100_without_a_reload(
    browser: webdriver.Chrome, stack: Stack, screenshots: Shot
) -> None:
    """The list shows a job just submitted; its page, opened while the job waits for a
    worker, follows it live to 100% and `succeeded`, with its states in its history, while
    the page itself is never reloaded."""
    _, token = stack.user("alice")
    job_id = stack.submit(token, steps=4, step_s=0.4)
    sign_in(browser, stack.console.url, token, "alice")
    open_list(browser, stack)
    assert listed(browser) == [job_id]
    row = browser.find_element(By.CSS_SELECTOR, f'tr[data-job-id="{job_id}"]')
    assert row.get_attribute("data-state") == "queued"
    screenshots(browser, "jobs-list")

    row.find_element(By.TAG_NAME, "a").click()
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "job-state"), "queued"))
    assert text_of(browser, "#job-progress-text") == "0%"
    browser.execute_script("window.__sameDocument = 'not reloaded';")

    stack.start_worker()  # only now may the job run: everything after is the stream's doing
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "job-state"), "succeeded"))
    assert text_of(browser, "#job-progress-text") == "100%"
    assert browser.execute_script("return window.__sameDocument;") == "not reloaded"
    # The history, as the stream told it (progress entries between may be coalesced).
    history: list[str] = wait(browser).until(
        lambda d: [row.text for row in d.find_elements(By.CSS_SELECTOR, "tr.history-row")]
    )
    states = [line.split()[4] for line in history if " state " in line]
    assert states == ["queued", "running", "succeeded"], history
    assert any("step 4 of 4" in line for line in history), history
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "job-result"), '"steps": 4'))
    assert not browser.find_element(By.ID, "cancel").is_displayed()  # an ended job
    screenshots(browser, "job-page")


def test_cancel_on_the_job_page_cancels_a_running_job(
    browser: webdriver.Chrome, stack: Stack
) -> None:
    """The cancel button stops a long job a worker is running: the page shows it
    `cancelled` as the worker ends it, and the API agrees."""
    _, token = stack.user("carol")
    job_id = stack.submit(token, steps=400, step_s=0.25)  # 100 s if left alone
    stack.start_worker()
    sign_in(browser, stack.console.url, token, "carol")
    browser.get(f"{stack.console.url}/#/jobs/echo/{job_id}")
    wait(browser).until(lambda d: text_of(d, "#job-progress-text") not in ("", "0%"))
    assert text_of(browser, "#job-state") == "running"
    browser.find_element(By.ID, "cancel").click()
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "job-state"), "cancelled"))
    job = stack.call("GET", f"/jobs/{job_id}", token).json()
    assert job["state"] == "cancelled"
    assert job["progress"] < 1


def test_the_state_and_type_filters_narrow_the_list(
    browser: webdriver.Chrome, stack: Stack
) -> None:
    """State is asked of the service and type is filtered in the page: each shows exactly
    the jobs that match, and clearing them shows all again."""
    _, token = stack.user("dave")
    work = stack.submit(token, steps=400, step_s=0.25)  # long: the cancel always finds it
    stack.call("POST", f"/jobs/{work}/cancel", token)
    fanout = stack.submit(token, "fanout", children=0)
    stack.start_worker()
    sign_in(browser, stack.console.url, token, "dave")
    wait(browser).until(
        lambda _: stack.call("GET", f"/jobs/{work}", token).json()["state"] == "cancelled"
    )
    open_list(browser, stack)
    assert sorted(listed(browser)) == sorted([work, fanout])

    Select(browser.find_element(By.ID, "state-filter")).select_by_value("cancelled")
    wait(browser).until(lambda d: "state=cancelled" in d.current_url and listed(d) == [work])

    Select(browser.find_element(By.ID, "state-filter")).select_by_value("")
    wait(browser).until(lambda d: sorted(listed(d)) == sorted([work, fanout]))
    Select(browser.find_element(By.ID, "type-filter")).select_by_value("fanout")
    wait(browser).until(lambda d: "type=fanout" in d.current_url and listed(d) == [fanout])


def test_a_second_user_sees_nothing_of_the_first_users_jobs(
    browser: webdriver.Chrome, stack: Stack
) -> None:
    """Signed in as another user, the list holds only that user's jobs, and the first
    user's job page answers "no such job": the console shows what each token may see."""
    _, first = stack.user("erin")
    theirs = stack.submit(first, steps=1, step_s=0)
    sign_in(browser, stack.console.url, first, "erin")
    open_list(browser, stack)
    assert theirs in listed(browser)

    _, second = stack.user("frank")
    sign_in(browser, stack.console.url, second, "frank")
    open_list(browser, stack)
    assert listed(browser) == []
    assert text_of(browser, "#no-jobs") == "No jobs."
    mine = stack.submit(second, steps=1, step_s=0)
    open_list(browser, stack)
    assert listed(browser) == [mine]

    browser.get(f"{stack.console.url}/#/jobs/echo/{theirs}")
    browser.refresh()
    wait(browser).until(ec.presence_of_element_located((By.ID, "job-problem")))
    assert "No such job" in text_of(browser, "#job-problem")
    assert theirs not in str(browser.find_element(By.ID, "view").text)


def test_markup_in_a_job_is_shown_as_text_never_run(
    browser: webdriver.Chrome, stack: Stack
) -> None:
    """A payload holding HTML is printed as its characters: no element is made from it and
    no script in it runs, on the list or the job page."""
    _, token = stack.user("mallory")
    markup = "<img src=x onerror=window.__injected=1>"
    job_id = stack.submit(token, steps=1, step_s=0, fail_while=f"/nonexistent/{markup}")
    sign_in(browser, stack.console.url, token, "mallory")
    browser.get(f"{stack.console.url}/#/jobs/echo/{job_id}")
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "job-payload"), markup))
    assert browser.find_elements(By.CSS_SELECTOR, "#view img") == []
    assert browser.execute_script("return window.__injected;") is None
