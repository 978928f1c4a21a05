"""The landing page at https://mlenv.localhost:<port>/, in a real browser (Debian's headless chromium
trusting the generated CA): behind the proxy's basic auth, every link on it answers, its health is
what `mlenv status` finds, a stopped service shows as down, and the loop's figures are the
registry's and the trigger service's. Screenshots go to .cache/screenshots/."""

from __future__ import annotations

import time
from pathlib import Path

from selenium.webdriver.common.by import By

from mlenv import health
from mlenv import outputs as platform
from tests.e2e.clients import mlflow_api, request
from tests.e2e.conftest import Stack
from tests.e2e.landing_page import HOME, open_home
from tests.helpers import browser


def status_now(stack: Stack) -> dict[str, bool]:
    """What `mlenv status` finds (its own checks), by service."""
    found = platform.read(stack.state)
    return {one.service: one.ok for one in health.check_all(found, stack.state, None)}


def test_the_page_needs_the_password(stack: Stack) -> None:
    anonymous, _ = request(stack, HOME)
    assert anonymous == 401
    wrong = {"Authorization": "Basic bWxlbnY6d3Jvbmc="}  # mlenv:wrong
    assert request(stack, HOME, headers=wrong)[0] == 401


def test_every_service_is_listed_healthy_with_its_version_and_each_link_answers(stack: Stack, driver) -> None:
    rows = open_home(driver, stack, "landing-page.png")
    outputs = platform.read(stack.state)
    assert set(rows) == set(outputs.services) - {"portal"}
    assert {service: row["health"] for service, row in rows.items()} == dict.fromkeys(rows, "up")
    assert {service: row["link"].rstrip("/") for service, row in rows.items()} == {
        service: outputs.url(service).rstrip("/") for service in rows
    }
    assert rows["mlflow"]["version"] == outputs.versions["mlflow"]
    assert rows["label_studio"]["version"] == outputs.versions["label_studio"]
    assert rows["object_store"]["version"].startswith("SeaweedFS ")
    # Each link, followed in the same browser without the page's credentials, answers (each service
    # then asks for its own, or shows its login page).
    browser.basic_auth(driver, None)
    for service, row in rows.items():
        driver.get(row["link"])
        status = browser.navigation_status(driver)
        assert 200 <= status < 500, f"{service}: {row['link']} answered {status}"


def test_the_page_says_what_mlenv_status_says(stack: Stack, driver) -> None:
    rows = open_home(driver, stack, "landing-page-health.png")
    found = status_now(stack)
    assert {service: row["health"] == "up" for service, row in rows.items()} == {
        service: found[service] for service in rows
    }


def test_a_stopped_service_shows_as_down_and_up_again_once_started(stack: Stack, container, driver) -> None:
    container.run_expect([0], "systemctl stop mlenv-loop")
    try:
        time.sleep(2.5)  # past the page's cache of results
        rows = open_home(driver, stack, "landing-page-service-down.png")
        assert rows["ml_loop"]["health"] == "down"
        assert {service for service, row in rows.items() if row["health"] == "down"} == {"ml_loop"}
        assert not status_now(stack)["ml_loop"]
        assert "trigger service" in driver.find_element(By.ID, "loop").text
    finally:
        container.run_expect([0], "systemctl start mlenv-loop")
    down = health.wait_until_up(platform.read(stack.state), stack.state, None, timeout_s=120)
    assert down == []
    time.sleep(2.5)
    assert open_home(driver, stack, "landing-page.png")["ml_loop"]["health"] == "up"


def test_the_loop_shows_each_projects_production_model_as_the_registry_has_it(stack: Stack, driver) -> None:
    open_home(driver, stack, "landing-page.png")
    cards = driver.find_elements(By.CSS_SELECTOR, "#loop .card[data-project]")
    assert cards, driver.find_element(By.ID, "loop").text
    for card in cards:
        text = card.text
        model = card.find_element(By.TAG_NAME, "b").text
        status, found = mlflow_api(stack, f"registered-models/alias?name={model}&alias=production")
        expected = f"in production v{found['model_version']['version']}" if status == 200 else "in production none yet"
        assert expected in text, text


def test_the_page_carries_no_secret(stack: Stack, driver) -> None:
    open_home(driver, stack, "landing-page.png")
    page = driver.page_source
    secrets = [path for path in Path(stack.state / "secrets").rglob("*") if path.is_file() and path.suffix != ".crt"]
    assert secrets
    leaked = [path.name for path in secrets if len(value := path.read_text().strip()) >= 8 and value in page]
    assert leaked == []


def test_the_charts_draw_the_last_hour_from_prometheus(stack: Stack, driver) -> None:
    open_home(driver, stack, "landing-page.png")
    cards = driver.find_elements(By.CSS_SELECTOR, "#charts .card")
    titles = [card.find_element(By.TAG_NAME, "h3").text for card in cards]
    assert titles == ["Requests per second (proxy)", "CPU busy", "Memory available", "Training runs", "Live accuracy"]
    drawn = {title for card, title in zip(cards, titles, strict=True) if card.find_elements(By.TAG_NAME, "svg")}
    assert {"Requests per second (proxy)", "CPU busy", "Memory available"} <= drawn, drawn
    # Firing alerts or none, as Prometheus has them (test_metrics.py fires one).
    alerts = driver.find_element(By.ID, "alerts")
    assert alerts.find_elements(By.CSS_SELECTOR, "li[data-alert]") or "No alert is firing." in alerts.text, alerts.text
