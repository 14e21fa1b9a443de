"""The leaderboard page in a real browser (headless Chromium through selenium) against a real
``registry serve``: sign in with a read token, see the champion, the verdicts and the chart."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.test_page import seed_board

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
TRACES = ".js-plotly-plot .scatterlayer .trace"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        message = (f"{' and '.join(missing)} not installed: `apt-get install chromium "
                   "chromium-driver` (.ci/run does)")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless", "--no-sandbox", "--disable-gpu",
                     "--disable-background-networking", "--disable-component-update",
                     "--no-first-run", "--disable-dev-shm-usage", "--window-size=1400,1200",
                     f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(
        executable_path=str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log")))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _console_errors(driver) -> list[dict]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def test_a_person_signs_in_and_sees_the_champion_the_verdicts_and_the_chart(
        server, tokens, engine, artefacts_root, make_bundle, browser, tmp_path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    ids = seed_board(engine, artefacts_root, make_bundle)
    driver = browser
    wait = WebDriverWait(driver, 60)

    driver.get(server.url + "/")  # public_reads is off on this server: a sign-in form
    assert "Sign in to see the leaderboard" in driver.find_element(By.TAG_NAME, "h2").text
    assert not driver.find_elements(By.CSS_SELECTOR, "tr.champion")
    _console_errors(driver)  # the 401 itself is logged; what follows must be clean
    driver.find_element(By.ID, "token").send_keys(tokens["read"])
    driver.find_element(By.CSS_SELECTOR, "form.signin button[type=submit]").click()

    champion = wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, "tr.champion")))
    assert driver.current_url == server.url + "/" and tokens["read"] not in driver.current_url
    assert champion.get_attribute("data-version") == ids["champion"]
    assert "champion" in champion.find_element(By.CSS_SELECTOR, ".state").text.lower()
    rows = driver.find_elements(By.CSS_SELECTOR, "tr.champion, tr.challenger")
    assert [r.get_attribute("data-version") for r in rows] == [
        ids["champion"], ids["better"], ids["worse"]]
    better = rows[1].find_element(By.CSS_SELECTOR, ".verdict")
    assert better.text == "PASS" and better.is_displayed()
    assert rows[2].find_element(By.CSS_SELECTOR, ".verdict").text == "FAIL"
    assert "The gate would promote " + ids["better"] in driver.find_element(
        By.CSS_SELECTOR, "p.call").text
    assert not driver.find_element(By.CSS_SELECTOR, "tr.retired").is_displayed()  # folded

    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, TRACES)) == 3)
    legend = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".legend .traces text")]
    assert legend == [f"{ids['champion']} (champion)", ids["better"], ids["worse"]]
    assert driver.find_element(By.CSS_SELECTOR, ".js-plotly-plot").size["height"] >= 300
    assert _console_errors(driver) == []

    cookie = driver.get_cookie("podium_token")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert driver.execute_script("return document.cookie") == ""  # out of scripts' reach
    driver.save_screenshot(str(tmp_path / "leaderboard.png"))

    driver.find_element(By.CSS_SELECTOR, "form[action='/sign-out'] button").click()
    wait.until(seen.presence_of_element_located((By.ID, "token")))
    assert driver.get_cookie("podium_token") is None


def test_the_api_docs_render_every_operation_offline(server, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser
    wait = WebDriverWait(driver, 60)
    operations = httpx.get(server.url + "/openapi.json").json()["paths"]
    expected = sum(len(methods) for methods in operations.values())

    driver.get(server.url + "/docs")
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) == expected)
    paths = {e.text.replace("\u200b", "") for e in driver.find_elements(
        By.CSS_SELECTOR, ".opblock-summary-path")}
    assert "/api/v1/versions/{version_id}/promote" in paths
    assert _console_errors(driver) == []

    driver.get(server.url + "/redoc")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-section-id^='operation/']"))
    sections = driver.find_elements(By.CSS_SELECTOR, "[data-section-id^='operation/']")
    assert len(sections) == expected
    # ReDoc's sidebar always asks a CDN for its maker's logo; the policy refuses, nothing leaves.
    refused = [e["message"] for e in _console_errors(driver)]
    assert all("cdn.redoc.ly" in m and "Content Security Policy" in m for m in refused), refused
    sources = [e.get_attribute("src") for e in driver.find_elements(By.TAG_NAME, "script")]
    assert all(src.startswith(server.url) for src in sources if src)


def test_from_the_leaderboard_to_a_version_page_and_the_track_list(
        server, tokens, engine, artefacts_root, make_bundle, browser, tmp_path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    ids = seed_board(engine, artefacts_root, make_bundle)
    driver = browser
    wait = WebDriverWait(driver, 60)
    driver.get(server.url + "/")
    driver.find_element(By.ID, "token").send_keys(tokens["read"])
    driver.find_element(By.CSS_SELECTOR, "form.signin button[type=submit]").click()
    wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, "tr.champion")))
    assert driver.find_element(By.CSS_SELECTOR, ".as-of .last-settled").text
    _console_errors(driver)  # the sign-in's 401 is logged; what follows must be clean

    driver.find_element(By.LINK_TEXT, ids["better"]).click()
    wait.until(lambda d: d.current_url == f"{server.url}/versions/{ids['better']}")
    evidence_lines = "#chart-evidence .scatterlayer .trace"
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, evidence_lines)) == 2)
    assert len(driver.find_elements(By.CSS_SELECTOR, "#chart-evidence .barlayer .trace")) == 1
    assert len(driver.find_elements(By.CSS_SELECTOR, "#chart-record .scatterlayer .trace")) == 1
    assert driver.find_element(By.CSS_SELECTOR, ".verdict").text == "PASS"
    assert len(driver.find_elements(By.CSS_SELECTOR, "tr.rule")) >= 3
    assert len(driver.find_elements(By.CSS_SELECTOR, "tr.audit-entry")) == 1  # registered
    assert _console_errors(driver) == []
    driver.save_screenshot(str(tmp_path / "version.png"))

    driver.find_element(By.LINK_TEXT, ids["champion"]).click()  # the champion it was paired with
    wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, ".state-champion")))
    driver.find_element(By.LINK_TEXT, "all tracks").click()
    rows = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "tr.track-row"))
    assert [r.get_attribute("data-track") for r in rows] == ["equities-daily"]
    rows[0].find_element(By.LINK_TEXT, "equities-daily").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, TRACES)) == 3)
    assert _console_errors(driver) == []
