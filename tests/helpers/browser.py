"""A real browser for the tests: Debian's chromium, headless, driven by Selenium through Debian's
chromium-driver (nothing is downloaded). It trusts the platform's CA the way a user's browser would,
through an NSS database in a throwaway HOME, never by ignoring certificate errors."""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def missing() -> str:
    """What is not installed for a browser test ('' when everything is)."""
    tools = {CHROMIUM: "chromium", CHROMEDRIVER: "chromium-driver", "certutil": "libnss3-tools"}
    absent = [package for tool, package in tools.items() if shutil.which(tool) is None]
    return f"apt-get install {' '.join(absent)}" if absent else ""


def trust(home: Path, ca_file: str) -> None:
    """The CA in the NSS database chromium reads for the user whose HOME this is."""
    database = home / ".pki/nssdb"
    database.mkdir(parents=True, exist_ok=True)
    subprocess.run(["certutil", "-d", f"sql:{database}", "-N", "--empty-password"], check=True, capture_output=True)
    subprocess.run(
        ["certutil", "-d", f"sql:{database}", "-A", "-t", "C,,", "-n", "mlenv test CA", "-i", ca_file],
        check=True,
        capture_output=True,
    )


@contextmanager
def chromium(home: Path, ca_file: str) -> Iterator[Any]:
    """A headless chromium trusting `ca_file`, as a Selenium driver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    trust(home, ca_file)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1400", f"--user-data-dir={home / 'profile'}"):  # fmt: skip
        options.add_argument(argument)
    service = Service(executable_path=CHROMEDRIVER, env={"HOME": str(home), "PATH": "/usr/bin:/bin"})
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def basic_auth(driver: Any, credentials: str | None) -> None:
    """Send basic-auth credentials ("user:password") with every request from now on; None stops."""
    driver.execute_cdp_cmd("Network.enable", {})
    headers = {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()} if credentials else {}
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": headers})


def navigation_status(driver: Any) -> int:
    """The HTTP status of the page the browser shows (0 when nothing answered)."""
    return int(driver.execute_script("return performance.getEntriesByType('navigation')[0].responseStatus || 0"))
