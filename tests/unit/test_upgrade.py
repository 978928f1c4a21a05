"""`mlenv upgrade`: the releases running (outputs.json) against the pins, a backup before the converge, and
nothing at all when every service runs its pin. The converge itself is the roles' (service_release), run for
real by the mlflow and label_studio scenarios and the e2e stack; here a stand-in profile records the order."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from mlenv import releases
from mlenv.app import Application
from mlenv.cli import main
from mlenv.config import MlenvConfig
from mlenv.outputs import Outputs
from mlenv.rules import role_default

CURRENT = {"mlflow": role_default("mlflow", "version"), "label_studio": role_default("label_studio", "version")}


def outputs(versions: dict[str, str], services: tuple[str, ...] = ("mlflow", "label_studio")) -> dict:
    return {
        "environment": "dev",
        "services": {name: {"url": f"https://{name}.mlenv.localhost:8443"} for name in services},
        "object_store_endpoint": "http://127.0.0.1:8333",
        "region": "us-east-1",
        "buckets": ["mlflow"],
        "versioned_buckets": [],
        "versions": versions,
    }


def test_the_plan_compares_the_running_releases_with_the_pins_or_the_overrides() -> None:
    config = MlenvConfig.model_validate({"environment": "dev", "versions": {"label_studio": "1.22.0"}})
    found = releases.plan(config, Outputs.model_validate(outputs({"mlflow": "3.16.1", "label_studio": "1.22.0"})))
    assert [(one.title, one.running, one.wanted, one.changes) for one in found] == [
        ("MLflow", "3.16.1", CURRENT["mlflow"], True),
        ("Label Studio", "1.22.0", "1.22.0", False),
    ]


def test_outputs_written_before_versions_were_kept_say_nothing_runs_a_known_release() -> None:
    old = outputs({}, services=("mlflow",))
    del old["versions"]
    found = releases.plan(MlenvConfig.model_validate({"environment": "dev"}), Outputs.model_validate(old))
    assert [(one.service, one.running, one.changes) for one in found] == [("mlflow", None, True)]


class Upgrading:
    """The profile as the roles behave: the converge leaves outputs.json with the pinned releases."""

    status_address = None

    def __init__(self, state: Path, calls: list[str], *, fails: bool = False) -> None:
        self.state, self.calls, self.fails = state, calls, fails

    def up(self) -> SimpleNamespace:
        self.calls.append("converge")
        if self.fails:
            from mlenv.errors import UserError

            raise UserError("the converge failed (1 failed tasks): The upgrade of MLflow to 3.17.2 failed")
        (self.state / "outputs.json").write_text(json.dumps(outputs(CURRENT)))
        return SimpleNamespace(changed=12, log=Path("/tmp/log"))


@pytest.fixture
def invoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    state = tmp_path / "state"
    state.mkdir()
    calls: list[str] = []

    def backup(app, target, key, keep):
        calls.append(f"backup to {target} keeping {keep}")
        return str(target / "dev-20261207T050000Z"), 4_500_000

    # The module, not the command of the same name that mlenv.cli exports.
    monkeypatch.setattr(importlib.import_module("mlenv.cli.backup"), "take_backup", backup)
    config = tmp_path / "mlenv.yaml"
    config.write_text("environment: dev\n")
    env = {"MLENV_CONFIG": str(config), "MLENV_STATE_DIR": str(state), "COLUMNS": "200", "CI": "1"}

    def run(*args: str, running: dict[str, str], fails: bool = False):
        (state / "outputs.json").write_text(json.dumps(outputs(running)))
        profile = Upgrading(state, calls, fails=fails)
        monkeypatch.setattr(Application, "profile", property(lambda self: profile))
        return CliRunner().invoke(main, ["upgrade", *args], env=env)

    run.calls = calls  # type: ignore[attr-defined]
    run.folder = tmp_path  # type: ignore[attr-defined]
    return run


def test_upgrade_backs_up_first_then_converges_and_says_what_changed(invoke) -> None:
    result = invoke("--to", str(invoke.folder / "backups"), running={"mlflow": "3.16.1", "label_studio": "1.22.0"})
    assert result.exit_code == 0, result.output
    assert invoke.calls == [f"backup to {invoke.folder / 'backups'} keeping 7", "converge"]
    assert re.search(rf"MLflow +│ 3\.16\.1 +│ {re.escape(CURRENT['mlflow'])} ", result.output), result.output
    assert f"MLflow 3.16.1 → {CURRENT['mlflow']}, Label Studio 1.22.0 → {CURRENT['label_studio']}" in result.output
    assert "backup before the upgrade: " in result.output and "(4.5 MB;" in result.output


def test_nothing_runs_when_every_service_runs_its_pin(invoke) -> None:
    result = invoke(running=CURRENT)
    assert result.exit_code == 0, result.output
    assert "nothing to upgrade" in result.output
    assert invoke.calls == []


def test_check_only_shows_the_plan(invoke) -> None:
    result = invoke("--check", running={"mlflow": "3.16.1", "label_studio": CURRENT["label_studio"]})
    assert result.exit_code == 0, result.output
    assert "3.16.1" in result.output and "=" in result.output
    assert invoke.calls == []


def test_no_backup_skips_it_and_a_failed_converge_is_reported(invoke) -> None:
    result = invoke("--no-backup", running={"mlflow": "3.16.1"}, fails=True)
    assert result.exit_code != 0
    assert invoke.calls == ["converge"]
    assert "The upgrade of MLflow to 3.17.2 failed" in result.output


def test_upgrade_needs_an_environment_that_is_up(tmp_path: Path) -> None:
    config = tmp_path / "mlenv.yaml"
    config.write_text("environment: dev\n")
    env = {"MLENV_CONFIG": str(config), "MLENV_STATE_DIR": str(tmp_path / "state"), "CI": "1"}
    result = CliRunner().invoke(main, ["upgrade"], env=env)
    assert result.exit_code != 0
    assert "mlenv up" in result.output
