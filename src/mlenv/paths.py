"""Where mlenv finds its playbooks and keeps its state."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_ENVIRONMENT = "local"


def project_root() -> Path:
    """The folder holding ansible/, inventories/ and pulumi/ (the checkout mlenv runs from)."""
    override = os.environ.get("MLENV_PROJECT_DIR")
    root = Path(override) if override else Path(__file__).resolve().parents[2]
    if not (root / "ansible/playbooks/site.yml").is_file():
        raise FileNotFoundError(
            f"no ansible/playbooks/site.yml under {root}: run mlenv from its checkout or set MLENV_PROJECT_DIR"
        )
    return root


def state_dir(environment: str = DEFAULT_ENVIRONMENT) -> Path:
    """Outputs, logs and the credentials of one environment (MLENV_STATE_DIR overrides)."""
    override = os.environ.get("MLENV_STATE_DIR")
    if override:
        return Path(override)
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local/state")
    return base / "mlenv" / environment
