"""pytest plugin: when a testinfra test fails, show the journal of the units it names.

A test module lists its units in ``journal_units``; the failure report then carries
the last lines of their journal from the same host, so a red test explains itself.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest

JOURNAL_LINES = 60


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    units = getattr(item.module, "journal_units", ())
    host = getattr(item, "funcargs", {}).get("host")
    if not units or host is None:
        return
    args = " ".join(f"-u {unit}" for unit in units)
    journal = host.run(f"journalctl --no-pager -n {JOURNAL_LINES} {args}")
    report.sections.append((f"journal ({', '.join(units)})", journal.stdout + journal.stderr))
