"""`mlenv rotate`: which secrets it renews, bad names refused before any change, and a rotation
that an unhealthy converge interrupted finished by the next run (the converge is the roles' job,
tested on the e2e stack; here a stand-in regenerates the files as the roles' lookups do)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from mlenv import rotation
from mlenv.app import Application
from mlenv.cli import main
from mlenv.errors import UserError

SECRETS = {
    "postgresql/mlflow": "db-1",
    "postgresql/labelstudio": "db-2",
    "object_store/mlflow.access_key": "ak",
    "object_store/mlflow.secret_key": "sk",
    "mlflow/admin_password": "admin",
    "mlflow/users/mlenv-ci": "ci",
    "mlflow/flask_secret_key": "sessions",
    "model_server/password": "models",
    "label_studio/api_token": "ls-token",
    "label_studio/users/ci@mlenv.local.api_token": "ls-ci-token",
    "ml_loop/webhook_secret": "hook",
    "ca/server.key": "server key",
    "ca/server.crt": "server certificate",
    "ca/ca.key": "not rotated: every client trusts its certificate",
    "ssh/id_ed25519": "the host's key",
}


@pytest.fixture
def secrets(tmp_path: Path) -> Path:
    folder = tmp_path / "state" / "secrets"
    for name, value in SECRETS.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(value)
    return folder


def test_only_the_secrets_whose_consumers_follow_a_converge_are_rotatable(secrets: Path) -> None:
    found = rotation.rotatable(secrets)
    assert "ssh/id_ed25519" not in found and "ca/ca.key" not in found
    assert set(found) == set(SECRETS) - {"ssh/id_ed25519", "ca/ca.key"}


def test_names_pick_kinds_or_single_secrets(secrets: Path) -> None:
    assert rotation.chosen(secrets, ["postgresql"]) == ["postgresql/labelstudio", "postgresql/mlflow"]
    assert rotation.chosen(secrets, ["mlflow/users/mlenv-ci", "mlflow"]) == [
        "mlflow/users/mlenv-ci",
        "mlflow/admin_password",
        "mlflow/flask_secret_key",
    ]
    assert rotation.chosen(secrets, ["tls", "label_studio"]) == [
        "ca/server.crt",
        "ca/server.key",
        "label_studio/api_token",
        "label_studio/users/ci@mlenv.local.api_token",
    ]
    assert rotation.chosen(secrets, []) == rotation.rotatable(secrets)


def test_an_unknown_name_is_refused(secrets: Path) -> None:
    with pytest.raises(UserError, match="not a secret mlenv rotates: ssh/id_ed25519, gitlab"):
        rotation.chosen(secrets, ["postgresql", "ssh/id_ed25519", "gitlab"])
    with pytest.raises(UserError, match="bring the environment up first"):
        rotation.chosen(secrets.parent / "nowhere", [])


def test_set_aside_keeps_the_first_previous_value(secrets: Path) -> None:
    rotation.set_aside(secrets, ["postgresql/mlflow"])
    assert rotation.under_way(secrets) == ["postgresql/mlflow"]
    assert not (secrets / "postgresql/mlflow").exists()
    (secrets / "postgresql/mlflow").write_text("db-new")  # what the converge generated
    rotation.set_aside(secrets, ["postgresql/mlflow"])  # run again: the value MLflow still has stays kept
    assert (secrets / "postgresql/mlflow.previous").read_text() == "db-1"
    assert (secrets / "postgresql/mlflow").read_text() == "db-new"
    assert rotation.finish(secrets) == ["postgresql/mlflow"]
    assert rotation.under_way(secrets) == [] and (secrets / "postgresql/mlflow").read_text() == "db-new"


class Regenerating:
    """The profile as the roles behave: each missing secret generated anew."""

    status_address = None

    def __init__(self, secrets: Path) -> None:
        self.secrets, self.runs = secrets, 0

    def up(self) -> SimpleNamespace:
        self.runs += 1
        for name in SECRETS:
            if not (self.secrets / name).exists():
                (self.secrets / name).write_text(f"new {self.runs}")
        return SimpleNamespace(changed=3, log=Path("/tmp/log"))


def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, profile: Regenerating, down: list[str], *args: str):
    monkeypatch.setattr(Application, "profile", property(lambda self: profile))
    monkeypatch.setattr("mlenv.health.wait_until_up", lambda *_, **__: down)
    monkeypatch.setattr("mlenv.outputs.read", lambda state: None)
    config = tmp_path / "mlenv.yaml"
    config.write_text("environment: dev\n")
    env = {"MLENV_CONFIG": str(config), "MLENV_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "200"}
    return CliRunner().invoke(main, ["rotate", *args], env=env)


def test_rotate_renews_converges_and_forgets_the_old_values(
    tmp_path: Path, secrets: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = Regenerating(secrets)
    result = run(tmp_path, monkeypatch, profile, [], "postgresql", "model_server")
    assert result.exit_code == 0, result.output
    assert "rotated 3 secret(s)" in result.output and "every service answers" in result.output
    assert (secrets / "postgresql/mlflow").read_text() == "new 1"
    assert (secrets / "model_server/password").read_text() == "new 1"
    assert (secrets / "object_store/mlflow.access_key").read_text() == "ak"  # not asked for
    assert not list(secrets.rglob("*.previous"))
    for value in ("db-1", "models"):  # names are shown, values never
        assert value not in result.output


def test_a_bad_name_changes_nothing(tmp_path: Path, secrets: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    profile = Regenerating(secrets)
    result = run(tmp_path, monkeypatch, profile, [], "postgresql", "typo")
    assert result.exit_code == 1
    assert "not a secret mlenv rotates: typo" in result.output
    assert profile.runs == 0 and not list(secrets.rglob("*.previous"))
    assert (secrets / "postgresql/mlflow").read_text() == "db-1"


def test_a_rotation_left_unhealthy_keeps_the_old_values_and_the_next_run_finishes_it(
    tmp_path: Path, secrets: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = Regenerating(secrets)
    failed = run(tmp_path, monkeypatch, profile, ["mlflow"], "mlflow")
    assert failed.exit_code == 1
    assert "down after 300 s: mlflow" in failed.output and "run `mlenv rotate` again" in failed.output
    assert (secrets / "mlflow/admin_password.previous").read_text() == "admin"
    again = run(tmp_path, monkeypatch, profile, [])  # no names: this one is finished, no other begun
    assert again.exit_code == 0, again.output
    assert (secrets / "postgresql/mlflow").read_text() == "db-1"
    assert "finishing the rotation of 3 secret(s) started before" in again.output
    # Generated once: the second run converges the values the first made, it does not rotate twice.
    assert (secrets / "mlflow/admin_password").read_text() == "new 1"
    assert not list(secrets.rglob("*.previous"))


def test_rotate_list_shows_kinds_and_secrets(tmp_path: Path, secrets: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = run(tmp_path, monkeypatch, Regenerating(secrets), [], "--list")
    assert result.exit_code == 0, result.output
    assert "object_store/mlflow.secret_key" in result.output and "every S3 identity's keys" in result.output
    assert "ssh/id_ed25519" not in result.output and "sk" not in result.output.split()
