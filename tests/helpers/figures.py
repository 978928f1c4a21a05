"""pytest plugin: figures the tests measure (recovery times, secret-scan counts), kept and shown.

A test records one with ``record_property("figure: <what>", value)``; the reports carry it to
the controlling process (under pytest-xdist too), which lists every figure in the terminal
summary and saves them to ``.cache/test-figures.json``, where the log of a CI run would hide
the tests' own output.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

PREFIX = "figure: "
FIGURES_FILE = Path(__file__).resolve().parents[2] / ".cache/test-figures.json"
_figures: dict[str, object] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call":
        return
    for key, value in report.user_properties:
        if key.startswith(PREFIX):
            _figures[key.removeprefix(PREFIX)] = value


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _figures:
        return
    FIGURES_FILE.parent.mkdir(parents=True, exist_ok=True)
    FIGURES_FILE.write_text(json.dumps(_figures, indent=2, sort_keys=True) + "\n")
    terminalreporter.section("figures measured by the tests")
    for name, value in sorted(_figures.items()):
        terminalreporter.write_line(f"{name}: {value}")
    terminalreporter.write_line(f"(saved to {FIGURES_FILE})")
