"""mlenv.yaml as an inventory layer: the one source of what it covers, checked against the inventory.

The layer is an inventory file of `all` variables, given to Ansible as the first inventory
source: below the operator's inventory in Ansible's precedence, never above it as extra vars
would be. Beside the values it carries `mlenv_settings` (each variable with the mlenv.yaml key it
comes from), and the boilerplate play stops before any host changes where a host sees another
value, naming both places. The layer is written on every run; nobody edits it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mlenv.config import MlenvConfig
from mlenv.files import write_private

LAYER_FILE = "mlenv-settings.yml"
HEADER = "# Written by mlenv from mlenv.yaml on every run: change mlenv.yaml, not this file.\n"

Settings = dict[str, tuple[Any, str]]


def owned_settings(config: MlenvConfig, state: Path, *, public_https_port: int, extra: Settings | None) -> Settings:
    """What mlenv.yaml sets, plus what mlenv derives for this run (where the secrets live, the port)."""
    return {
        **config.settings(),
        "mlenv_public_https_port": (public_https_port, "tls.https_port"),
        "mlenv_secrets_dir": (str(state / "secrets"), f"the state folder {state}"),
        **(extra or {}),
    }


def layer(settings: Settings) -> dict[str, Any]:
    values = {variable: value for variable, (value, _) in settings.items()}
    sources = {variable: {"value": value, "source": source} for variable, (value, source) in settings.items()}
    return {"all": {"vars": {**values, "mlenv_settings": sources}}}


def write_layer(state: Path, settings: Settings) -> Path:
    return write_private(state / LAYER_FILE, HEADER + yaml.safe_dump(layer(settings), sort_keys=True))
