"""Which release each service that migrates a database runs, and which one the next converge installs.

The running ones come from outputs.json (the roles publish them after a converge that worked: a rolled
back upgrade leaves the release before); the wanted ones are mlenv.yaml's `versions`, else the roles' pins.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlenv.config import MlenvConfig
from mlenv.outputs import TITLES, Outputs, Service
from mlenv.rules import role_default

# Services whose upgrade migrates a database: the roles install each release beside the one before,
# dump the databases first and roll back on failure.
MIGRATING: tuple[Service, ...] = ("mlflow", "label_studio")


@dataclass(frozen=True)
class Release:
    service: Service
    running: str | None
    wanted: str

    @property
    def title(self) -> str:
        return TITLES[self.service]

    @property
    def changes(self) -> bool:
        return self.running != self.wanted


def wanted(config: MlenvConfig, service: Service) -> str:
    override = getattr(config.versions, service)
    return str(override or role_default(service, "version"))


def plan(config: MlenvConfig, outputs: Outputs) -> list[Release]:
    """The services this environment runs that migrate, each with its running and wanted release."""
    return [
        Release(service, outputs.versions.get(service), wanted(config, service))
        for service in MIGRATING
        if service in outputs.services
    ]
