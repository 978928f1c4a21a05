"""The local profile's two targets: a systemd container on this machine, or this machine itself."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from mlenv import preflight
from mlenv.errors import UserError
from mlenv.localhost import LocalHost, pid1_is_systemd, ssh_connection
from mlenv.outputs import TITLES
from mlenv.profiles.base import Confirm, Profile, Run, converge, write_inventory
from mlenv.runners.ansible import PlaybookResult, forget_runs

LOCAL_INVENTORY_HOST = "mlenv-local"  # the host's name in inventories/local, whatever the container is called
# The first label of each service's address; the landing page is the bare domain.
HOST_NAMES = {"portal": "", "mlflow": "mlflow", "object_store": "s3", "label_studio": "labels"}


def local_inventory(run: Run, connection: dict[str, str]) -> list[Path]:
    """inventories/local, with the one host's connection in a file of its own, after it."""
    from mlenv.paths import project_root

    hosts = {"all": {"hosts": {LOCAL_INVENTORY_HOST: connection}}}
    return [project_root() / "inventories/local/hosts.yml", write_inventory(run.state / "connection.yml", hosts)]


class ThisHost(Profile):
    """Converges into the machine mlenv runs on (PID 1 must be systemd); nginx on 443."""

    status_address = "127.0.0.1"
    public_https_port = 443

    def preflight(self) -> None:
        if not pid1_is_systemd():
            raise UserError("local.target this-host needs systemd as PID 1 here; use target: container")
        self.check(preflight.run(self.run.config, host_exists=True, port_owned=True))

    def up(self) -> PlaybookResult:
        self.preflight()
        self.run.secrets.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.run.report.info("target: this machine (connection local)")
        return self._converge(self.reach())

    def plan(self) -> None:
        self.report_plan(self._converge(self.reach(), check=True))

    def down(self, *, purge: bool, confirm: Confirm) -> str:
        raise UserError(
            "local.target is this-host: stop the services with systemctl; mlenv removes nothing on this machine"
        )

    def operate(self, playbook: str, extravars: dict[str, object]) -> PlaybookResult:
        return self._converge(self.reach(), playbook=playbook, extravars=extravars)

    def reach(self) -> dict[str, str]:
        """The connection to the converged host."""
        return {"ansible_connection": "local"}

    def _converge(self, connection: dict[str, str], *, check: bool = False, **playbook: Any) -> PlaybookResult:
        inventory = local_inventory(self.run, connection)
        return converge(self.run, inventory, public_https_port=self.public_https_port, check=check, **playbook)

    def report_plan(self, result: PlaybookResult) -> None:
        if result.changed:
            self.run.report.info(f"{result.changed} change(s) would be made; full diff: {result.log}")
        else:
            self.run.report.success("nothing would change")


class LocalContainer(ThisHost):
    """A systemd container made from the test-host image, reached over SSH on 127.0.0.1."""

    def __init__(self, run: Run) -> None:
        from mlenv.paths import project_root

        super().__init__(run)
        config = run.config
        self.host = LocalHost(
            project_root(),
            name=config.local_host_name,
            https_port=config.tls.https_port,
            environment=config.environment,
        )
        self.public_https_port = config.tls.https_port

    def preflight(self) -> str:
        # Without podman the preflight says how to install it: nothing is asked of podman before.
        state = self.host.state() if shutil.which("podman") else "missing"
        self.check(preflight.run(self.run.config, host_exists=state != "missing", port_owned=state != "missing"))
        return state

    def up(self) -> PlaybookResult:
        self.preflight()
        report, host = self.run.report, self.host
        self.run.secrets.mkdir(parents=True, exist_ok=True, mode=0o700)
        report.info(f"target: systemd container host '{host.name}' (HTTPS on 127.0.0.1:{host.https_port})")
        with report.status("preparing the local host (image, container) …"):
            action = host.ensure_running()
        report.success(f"local host {host.name}: {action}")
        connection = self.connection()
        if connection.get("ansible_connection") == "ssh":
            report.info(f"connection: SSH on 127.0.0.1:{connection['ansible_port']}, host key pinned")
        return self._converge(connection)

    def reach(self) -> dict[str, str]:
        state = self.host.state()
        if state != "running":
            raise UserError(f"the local host {self.host.name} is {state}: bring it up first (mlenv up)")
        return self.connection()

    def connection(self) -> dict[str, str]:
        connection = ssh_connection(self.host, self.run.state, self.run.report.warning)
        if connection is None:
            self.run.report.warning(f"{self.host.name} publishes no SSH port; converging through Podman (slower)")
            return {"ansible_connection": "containers.podman.podman", "ansible_host": self.host.name}
        return connection

    def plan(self) -> None:
        state = self.host.state()
        if state != "running":
            self.describe_new(create=state == "missing")
            return
        self.report_plan(self._converge(self.connection(), check=True))

    def describe_new(self, *, create: bool) -> None:
        """What the first `mlenv up` makes, from mlenv.yaml alone: check mode needs a host to look at."""
        config, report, host = self.run.config, self.run.report, self.host
        if create:
            report.info(f"would create the local host '{host.name}' (systemd container, HTTPS published on "
                        f"127.0.0.1:{host.https_port})")  # fmt: skip
        else:
            report.info(f"would start the local host '{host.name}', then converge it")
        backend = config.object_store.backend
        report.info(f"would install PostgreSQL, the object store ({backend}), the TLS proxy and Prometheus, and serve:")
        services = ["portal", "mlflow", "object_store", *(["label_studio"] if config.services.label_studio else [])]
        for service in services:
            name = ".".join(label for label in (HOST_NAMES[service], config.tls.domain) if label)
            report.info(f"  {TITLES[service]:<16} https://{name}:{host.https_port}")
        buckets = ", ".join(config.object_store.buckets)
        report.info(f"would create the buckets {buckets} and generate every secret in {self.run.secrets}")

    def down(self, *, purge: bool, confirm: Confirm) -> str:
        host = self.host
        if not purge:
            return f"{host.name} stopped (data kept)" if host.stop() else f"{host.name} was not running"
        host.state()  # refuses a container that is not this environment's before asking anything
        self.confirmed(confirm, "This deletes every service's data", host.name)
        # The runs' logs and records describe a host that is gone.
        forget_runs(self.run.state)
        if not host.remove():
            return f"{host.name} did not exist"
        return f"{host.name} removed; credentials kept in {self.run.secrets} (delete the folder to forget them)"
