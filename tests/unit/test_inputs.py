"""The record of checked inputs: any change to what the up-front checks read makes a run check again."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mlenv import inputs
from tests.conftest import PROJECT_ROOT


@pytest.fixture
def root(tmp_path: Path) -> Path:
    copy = tmp_path / "project"
    for part in ("ansible/playbooks", "ansible/roles"):
        shutil.copytree(PROJECT_ROOT / part, copy / part, ignore=shutil.ignore_patterns("molecule", "__pycache__"))
    shutil.copytree(PROJECT_ROOT / "inventories/local", copy / "inventories/local")
    return copy


def sources(root: Path, tmp_path: Path) -> list[Path]:
    layer = tmp_path / "state/mlenv-settings.yml"
    layer.parent.mkdir(exist_ok=True)
    if not layer.exists():
        layer.write_text("all:\n  vars:\n    mlenv_domain: mlenv.localhost\n")
    return [layer, root / "inventories/local/hosts.yml"]


@pytest.mark.parametrize(
    "change",
    [
        "state/mlenv-settings.yml",  # mlenv.yaml changed
        "project/inventories/local/group_vars/proxy_hosts/proxy.yml",  # the operator's inventory
        "project/ansible/roles/mlflow/defaults/main.yml",  # a role's default (an upgrade)
        "project/ansible/roles/proxy/tasks/preflight.yml",  # a role's rules
        "project/ansible/roles/object_store/meta/argument_specs.yml",
        "project/ansible/playbooks/site.yml",
    ],
)
def test_any_input_of_the_checks_changes_the_digest(root: Path, tmp_path: Path, change: str) -> None:
    before = inputs.digest(root, sources(root, tmp_path))
    assert inputs.digest(root, sources(root, tmp_path)) == before
    with (tmp_path / change).open("a") as handle:
        handle.write("\n# changed\n")
    assert inputs.digest(root, sources(root, tmp_path)) != before


def test_what_the_checks_do_not_read_leaves_it_alone(root: Path, tmp_path: Path) -> None:
    before = inputs.digest(root, sources(root, tmp_path))
    (root / "ansible/roles/mlflow/tasks/install.yml").write_text("---\n# changed\n")
    (root / "ansible/roles/mlflow/README.md").write_text("changed")
    assert inputs.digest(root, sources(root, tmp_path)) == before


def test_only_a_recorded_digest_counts_and_the_marker_is_private(tmp_path: Path) -> None:
    assert not inputs.checked_before(tmp_path, "abc")
    inputs.remember(tmp_path, "abc")
    assert inputs.checked_before(tmp_path, "abc") and not inputs.checked_before(tmp_path, "abd")
    marker = inputs.marker_layer(tmp_path)
    assert "mlenv_inputs_unchanged: true" in marker.read_text()
    assert oct(marker.stat().st_mode & 0o777) == "0o600"
