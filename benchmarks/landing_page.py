"""How long the landing page takes, on a running environment, beside the cheapest request through the same
proxy in the same run: its /healthz (TLS, basic auth, no service asked).

    MLENV_STATE_DIR=... python -m benchmarks.landing_page [--requests 30]

1. baseline: GET /healthz through the proxy;
2. the page when every service is asked anew (each request after the page's 2 s cache of results);
3. the page from that cache (a burst of loads);
4. in headless chromium (Debian's, trusting the CA): navigation to load event, fresh each time.

Prints p50/p95 milliseconds and saves them to benchmarks/results/landing-page.json. Traffic goes only to the
environment's own proxy on loopback.
"""

from __future__ import annotations

import argparse
import base64
import os
import ssl
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

from benchmarks.common import report
from mlenv import outputs as platform
from mlenv.clients import domain_of, names_resolve_to
from tests.helpers import browser

CACHE_S = 2.1  # past the page's cache of results (files/portal.py CACHE_S)


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50_ms": round(statistics.median(ordered), 1), "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 1)}


def timed_get(url: str, auth: str, context: ssl.SSLContext) -> float:
    request = urllib.request.Request(url, headers={"Authorization": auth})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=30, context=context) as response:
        response.read()
        assert response.status == 200
    return (time.perf_counter() - started) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    state = Path(os.environ["MLENV_STATE_DIR"])
    found = platform.read(state)
    home = found.url("portal").rstrip("/") + "/"
    password = platform.read_secret(state, found.account("portal"), "password")
    auth = "Basic " + base64.b64encode(f"mlenv:{password}".encode()).decode()
    context = found.ssl_context()
    figures: dict[str, dict[str, float]] = {}
    with names_resolve_to(domain_of(found), "127.0.0.1"):
        timed_get(home, auth, context)
        figures["baseline: /healthz through the proxy"] = percentiles(
            [timed_get(home + "healthz", auth, context) for _ in range(args.requests)]
        )
        fresh = []
        for _ in range(args.requests):
            time.sleep(CACHE_S)
            fresh.append(timed_get(home, auth, context))
        figures["page, every service asked"] = percentiles(fresh)
        figures["page, from its cache"] = percentiles([timed_get(home, auth, context) for _ in range(args.requests)])
    loads = []
    with tempfile.TemporaryDirectory(prefix="mlenv-bench-browser-") as scratch:
        assert found.ca_certificate, "the environment has no CA of its own to trust"
        with browser.chromium(Path(scratch), found.ca_certificate) as driver:
            browser.basic_auth(driver, f"mlenv:{password}")
            for _ in range(max(5, args.requests // 3)):
                time.sleep(CACHE_S)
                driver.get(home)
                loads.append(
                    float(
                        driver.execute_script(
                            "const n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd - n.startTime"
                        )
                    )
                )
    figures["chromium: navigation to load event, fresh"] = percentiles(loads)
    return report("landing-page", {"figures": figures, "requests": args.requests})


if __name__ == "__main__":
    raise SystemExit(main())
