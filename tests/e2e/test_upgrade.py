"""`mlenv upgrade` on the shared stack, first of the e2e tests: the first `mlenv up` brought it up at the releases
before the pins (requirements/upgrade-from.yml, as mlenv.yaml's `versions:`). Data is written from outside through
the proxy, the override is taken out of mlenv.yaml, the runbook's blocks run as written, and the same data reads
back from the current releases. Every later e2e test then runs on the upgraded stack."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from mlenv.rules import role_default
from tests.e2e.clients import OUTSIDE
from tests.e2e.conftest import UPGRADE_FROM, Stack
from tests.helpers import runbooks

pytestmark = pytest.mark.upgrades_the_stack
HELPERS = Path(__file__).resolve().parents[1] / "helpers"
PREVIOUS = {"mlflow": UPGRADE_FROM["mlflow_version"], "label_studio": UPGRADE_FROM["label_studio_version"]}
CURRENT = {"mlflow": role_default("mlflow", "version"), "label_studio": role_default("label_studio", "version")}


def client_env(stack: Stack, service: str, record: Path) -> dict[str, str]:
    """A machine outside the stack, with the clients' default settings and the platform's CA."""
    env = {key: value for key, value in stack.env.items() if not key.startswith(("MLFLOW_", "LABEL_STUDIO_"))}
    env.update(UPGRADE_DATA_RECORD=str(record), REQUESTS_CA_BUNDLE=stack.ca)
    if service == "mlflow":
        env.update(MLFLOW_TRACKING_URI=stack.url("mlflow", ""), MLFLOW_TRACKING_USERNAME="admin",
                   MLFLOW_TRACKING_PASSWORD=stack.secret("mlflow/admin_password"), MLFLOW_DISABLE_TELEMETRY="true",
                   GIT_PYTHON_REFRESH="quiet")  # fmt: skip
    else:
        env.update(
            LABEL_STUDIO_URL=stack.url("labels", ""), LABEL_STUDIO_API_KEY=stack.secret("label_studio/api_token")
        )
    return env


def data(stack: Stack, service: str, mode: str, folder: Path) -> dict:
    """The scenario's data script for the service (write, or read back), run from outside the stack."""
    script = HELPERS / f"upgrade_data_{service}.py"
    result = subprocess.run(
        [sys.executable, str(OUTSIDE), str(script), mode],
        env=client_env(stack, service, folder / f"{service}.json"),
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def upgraded(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    folder = tmp_path_factory.mktemp("upgrade")
    before = {service: data(stack, service, "write", folder) for service in ("mlflow", "label_studio")}
    config = Path(stack.env["MLENV_CONFIG"])
    settings = yaml.safe_load(config.read_text())
    settings.pop("versions")  # what a newer mlenv, or an operator dropping the override, asks for
    config.write_text(yaml.safe_dump(settings))
    check = runbooks.run(runbooks.block("upgrade.md", "See what would be upgraded"), stack.env)
    where = {"MLENV_BACKUP_DIR": str(folder / "backups"), "MLENV_BACKUP_KEY": str(folder / "keys/e2e.agekey")}
    started = time.monotonic()
    done = runbooks.run(runbooks.block("upgrade.md", "Upgrade"), {**stack.env, **where})
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return SimpleNamespace(before=before, check=check, done=done, seconds=seconds, folder=folder)


def test_the_check_names_the_release_each_service_runs_and_the_one_it_gets(upgraded) -> None:
    assert upgraded.check.returncode == 0, upgraded.check.stdout + upgraded.check.stderr
    for service in ("mlflow", "label_studio"):
        assert PREVIOUS[service] in upgraded.check.stdout and CURRENT[service] in upgraded.check.stdout
    assert "nothing to upgrade" not in upgraded.check.stdout


def test_the_data_written_before_reads_back_from_the_current_releases(stack, upgraded) -> None:
    for service in ("mlflow", "label_studio"):
        assert upgraded.before[service]["server"] == PREVIOUS[service]
        after = data(stack, service, "read", upgraded.folder)
        assert after["server"] == CURRENT[service]
        assert after["found"] == upgraded.before[service]["found"] == after["written"], service


def test_it_backed_up_first_and_says_what_it_upgraded(upgraded, record_property) -> None:
    out = upgraded.done.stdout
    assert "backup before the upgrade: " in out, out
    (backup,) = (upgraded.folder / "backups").iterdir()
    assert (backup / "manifest.json").is_file()
    mlflow, labels = (f"{PREVIOUS[name]} → {CURRENT[name]}" for name in ("mlflow", "label_studio"))
    assert f"MLflow {mlflow}, Label Studio {labels}" in " ".join(out.split()), out
    record_property("figure: mlenv upgrade, backup first (s)", round(upgraded.seconds))


def test_the_stack_runs_the_pins_with_the_releases_before_beside_them(stack, upgraded, container) -> None:
    outputs = json.loads((stack.state / "outputs.json").read_text())
    assert outputs["versions"] == CURRENT
    for folder, service in (("mlflow", "mlflow"), ("label-studio", "label_studio")):
        link = container.file(f"/opt/mlenv/{folder}/venv")
        assert link.linked_to == f"/opt/mlenv/{folder}/releases/{CURRENT[service]}"
        releases = container.check_output(f"find /opt/mlenv/{folder}/releases -mindepth 1 -maxdepth 1 -type d")
        assert sorted(Path(one).name for one in releases.split()) == sorted([PREVIOUS[service], CURRENT[service]])
    again = stack.mlenv("upgrade", "--check")
    assert again.returncode == 0 and "nothing to upgrade" in again.stdout, again.stdout
    status = stack.mlenv("status")
    assert status.returncode == 0, status.stdout
