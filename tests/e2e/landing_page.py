"""The landing page in the e2e tests' browser: its address, the browser trusting the stack's CA, and
its services' rows as the page shows them (the browser itself: the e2e conftest's `driver`)."""

from __future__ import annotations

from selenium.webdriver.common.by import By

from tests.conftest import PROJECT_ROOT
from tests.e2e.conftest import DOMAIN, HTTPS_PORT, Stack
from tests.helpers import browser

HOME = f"https://{DOMAIN}:{HTTPS_PORT}/"  # Stack.url("") before there is a stack
SCREENSHOTS = PROJECT_ROOT / ".cache/screenshots"


def credentials(stack: Stack) -> str:
    return "mlenv:" + stack.secret("portal/password")


def open_home(driver, stack: Stack, screenshot: str) -> dict[str, dict[str, str]]:
    """Loads the page with the credentials and returns its rows: service → health, link, version."""
    browser.basic_auth(driver, credentials(stack))
    driver.get(HOME)
    assert browser.navigation_status(driver) == 200, driver.page_source[:500]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / screenshot))
    rows = {}
    for row in driver.find_elements(By.CSS_SELECTOR, "#services tr[data-service]"):
        cells = row.find_elements(By.TAG_NAME, "td")
        rows[row.get_attribute("data-service")] = {
            "health": row.get_attribute("data-health"),
            "link": cells[1].find_element(By.TAG_NAME, "a").get_attribute("href"),
            "version": cells[3].text,
        }
    return rows
