"""The starter ML project, and its own virtualenv (the product's, see mlenv.training_env)."""

from __future__ import annotations

from pathlib import Path

from mlenv.training_env import starter_python

TEMPLATE = Path(__file__).resolve().parents[2] / "templates/ml-project"


def template_python() -> Path:
    return starter_python()
