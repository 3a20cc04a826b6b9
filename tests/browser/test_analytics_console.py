"""The console's analytics page: the caller's metrics as the API lists them, and a chosen
metric's windows per group, with the counts the API computes, followed live through the
service's window stream: a window of events sent while the page is open appears, and
closes, with no reload. The analytics API (its window closer running) and the console run
as real processes on moto."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from longhaul.aws.clients import AwsClients
from tests.browser.conftest import Server, api_and_console
from tests.browser.test_console import sign_in, wait
from tests.conftest import REGION
from tests.integration.analytics.engine_support import AnalyticsPlatform, provision_analytics
from tests.support.app import forge
from tests.support.moto import MotoServer

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]

MINUTE_MS = 60_000
ORDERS = {"event": "order", "dimensions": ["country"], "value": "amount", "distinct": "user"}
# (minutes before the newest minute, country, amount): a few minutes of orders to chart.
HISTORY = [
    (6, "fr", 12), (6, "de", 30), (5, "fr", 8), (5, "fr", 20), (5, "it", 5), (4, "de", 14),
    (4, "de", 9), (4, "fr", 40), (3, "it", 22), (2, "fr", 18), (2, "de", 7), (2, "de", 11),
    (1, "fr", 25), (1, "it", 6), (0, "fr", 10), (0, "de", 3),
]  # fmt: skip


@dataclass
class AnalyticsStack:
    platform: AnalyticsPlatform
    api: Server
    console: Server


@pytest.fixture(scope="module")
async def analytics(
    moto: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[AnalyticsStack]:
    """The analytics API (which runs the window closer: no worker is needed for client
    events) and the console in front of it; killed at the end, whatever happened."""
    aws = AwsClients(REGION)
    try:
        platform = await provision_analytics(aws, moto.endpoint)
    finally:
        await aws.close()
    logs = tmp_path_factory.mktemp("analytics-console")
    with api_and_console(
        "analytics", "longhaul_analytics", platform.environment("api"), logs
    ) as served:
        yield AnalyticsStack(platform, served.api, served.console)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def orders(first: int, minute_ms: int, rows: list[tuple[int, str, int]]) -> list[dict[str, Any]]:
    """Order events, 20 s into their minute (`minute_ms` less the row's minutes)."""
    return [
        {
            "id": f"o-{first + n}",
            "name": "order",
            "time": iso(minute_ms - back * MINUTE_MS + 20_000),
            "properties": {"country": country, "amount": amount, "user": f"u{(first + n) % 5}"},
        }
        for n, (back, country, amount) in enumerate(rows)
    ]


def shown_windows(driver: webdriver.Chrome) -> dict[tuple[str, str], dict[str, str]]:
    """The page's window rows: (start, group) -> count, final, revision."""
    found: dict[tuple[str, str], dict[str, str]] = {}
    for row in driver.find_elements(By.CSS_SELECTOR, "tr.window-row"):
        key = (str(row.get_attribute("data-start")), str(row.get_attribute("data-group")))
        found[key] = {
            "count": str(row.get_attribute("data-count")),
            "final": str(row.get_attribute("data-final")),
        }
    return found


def api_windows(
    api: httpx.Client, headers: dict[str, str], start_ms: int, end_ms: int
) -> dict[tuple[str, str], dict[str, str]]:
    """The API's 1m windows of `orders` starting in [start, end), as shown_windows reads
    the page's."""
    answer = api.get(
        "/aggregates",
        params={"metric": "orders", "window": "1m", "start": iso(start_ms), "end": iso(end_ms)},
        headers=headers,
    )
    assert answer.status_code == 200, answer.text
    return {
        (w["start"], f"country={w['group']['country']}"): {
            "count": str(w["count"]),
            "final": "true" if w["final"] else "false",
        }
        for w in answer.json()["windows"]
    }


def settled(
    api: httpx.Client, headers: dict[str, str], start_ms: int, end_ms: int, groups: int
) -> dict[tuple[str, str], dict[str, str]]:
    """The API's windows once `groups` of them exist and every one is final (the closer
    passed them): what the page must end up showing."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = api_windows(api, headers, start_ms, end_ms)
        if len(found) == groups and all(w["final"] == "true" for w in found.values()):
            return found
        time.sleep(0.3)
    raise AssertionError(f"the windows never closed: {found}")


def charted(driver: webdriver.Chrome) -> dict[tuple[str, str], float]:
    """The chart's dots: (start, group) -> value."""
    return {
        (str(dot.get_attribute("data-start")), str(dot.get_attribute("data-group"))): float(
            str(dot.get_attribute("data-value"))
        )
        for dot in driver.find_elements(By.CSS_SELECTOR, "#window-figure circle.point")
    }


def open_analytics(driver: webdriver.Chrome, console: str) -> None:
    """The analytics page, through its header link (main.js routes #/analytics)."""
    wait(driver).until(lambda d: d.find_elements(By.ID, "nav-analytics"))
    driver.find_element(By.ID, "nav-analytics").click()
    wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#analytics[data-ready]"))
    assert driver.current_url.startswith(f"{console}/#/analytics")


@pytest.fixture
def client(analytics: AnalyticsStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=analytics.api.url, timeout=30) as api:
        yield api


def test_the_analytics_page_follows_a_metrics_windows_live(
    browser: webdriver.Chrome,
    analytics: AnalyticsStack,
    client: httpx.Client,
    screenshots: Callable[[webdriver.Chrome, str], Path],
) -> None:
    """The page lists the caller's metrics as the API does; the chosen metric's windows
    show the API's count for every (minute, group), final once closed; orders sent while
    the page is open make a new window that appears, then closes, with its API count, in
    the table and on the chart, and the page is never reloaded; choosing the sum, then the
    sliding windows, charts the API's values for them."""
    sub = f"ana-{uuid.uuid4().hex[:8]}"
    token = forge(analytics.platform.auth, sub=sub, username="ana")
    headers = {"Authorization": f"Bearer {token}"}
    declared = client.put("/metrics/orders", json=ORDERS, headers=headers)
    assert declared.status_code == 200, declared.text
    newest = (int(time.time() * 1000) // MINUTE_MS - 3) * MINUTE_MS  # three minutes ago
    sent = client.post("/events", json={"events": orders(0, newest, HISTORY)}, headers=headers)
    assert sent.status_code == 200, sent.text
    assert len(sent.json()["accepted"]) == len(HISTORY), sent.text
    start, end = newest - 10 * MINUTE_MS, newest + 5 * MINUTE_MS
    groups = len({(back, country) for back, country, _ in HISTORY})
    expected = settled(client, headers, start, end, groups)

    sign_in(browser, analytics.console.url, token, "ana")
    open_analytics(browser, analytics.console.url)
    listed = [m["name"] for m in client.get("/metrics", headers=headers).json()]
    shown = [
        str(r.get_attribute("data-metric"))
        for r in browser.find_elements(By.CSS_SELECTOR, "tr.metric-row")
    ]
    assert shown == listed == ["events", "orders"], shown

    browser.find_element(By.CSS_SELECTOR, 'tr[data-metric="orders"] a.choose-metric').click()
    wait(browser).until(lambda d: shown_windows(d) == expected)
    wait(browser).until(lambda d: d.find_element(By.ID, "stream-state").text == "live")
    browser.execute_script("window.__sameDocument = 'not reloaded';")

    # A minute no window holds yet: its orders reach the page only through the stream.
    later = newest + MINUTE_MS
    new = orders(len(HISTORY), later, [(0, "es", 9), (0, "es", 4)])
    sent = client.post("/events", json={"events": new}, headers=headers)
    assert sent.status_code == 200, sent.text
    expected = settled(client, headers, start, end, groups + 1)
    key = (iso(later), "country=es")
    assert expected[key] == {"count": "2", "final": "true"}
    wait(browser).until(lambda d: shown_windows(d) == expected)
    assert browser.execute_script("return window.__sameDocument;") == "not reloaded"
    point = browser.find_element(
        By.CSS_SELECTOR, f'#window-figure circle[data-start="{key[0]}"][data-group="{key[1]}"]'
    )
    assert point.get_attribute("data-value") == "2"
    assert point.get_attribute("data-final") == "true"
    screenshots(browser, "analytics-page")

    # The other choices draw what the API answers too: the sum, and the sliding windows.
    Select(browser.find_element(By.ID, "window-measure")).select_by_value("sum")
    wait(browser).until(lambda d: charted(d).get(key) == 13.0)
    Select(browser.find_element(By.ID, "window-kind")).select_by_value("5m/1m")
    sliding = client.get(
        "/aggregates",
        params={"metric": "orders", "window": "5m/1m", "start": iso(start), "end": iso(end)},
        headers=headers,
    ).json()["windows"]
    sums = {(w["start"], f"country={w['group']['country']}"): w["sum"] for w in sliding}
    assert len(sums) > groups + 1  # an event is in five sliding windows
    wait(browser).until(lambda d: charted(d) == sums)
