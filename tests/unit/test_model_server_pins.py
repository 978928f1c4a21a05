"""The model server loads what the training project saves: its scikit-learn, pandas and skops
pins are the training project's, and its MLflow is the platform's."""

from __future__ import annotations

import yaml

from tests.conftest import PROJECT_ROOT, ROLES_DIR


def pins(lines: list[str]) -> dict[str, str]:
    found = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            found[name.split("[")[0].lower()] = version
    return found


def test_the_model_server_pins_what_the_training_project_saves_with():
    server = pins(
        yaml.safe_load((ROLES_DIR / "model_server/defaults/main.yml").read_text())["model_server_requirements"]
    )
    training = pins((PROJECT_ROOT / "templates/ml-project/requirements.txt").read_text().splitlines())
    mlflow = yaml.safe_load((ROLES_DIR / "mlflow/defaults/main.yml").read_text())["mlflow_version"]
    for package in ("scikit-learn", "pandas", "skops"):
        assert server[package] == training[package], package
    assert server["mlflow"] == training["mlflow-skinny"] == mlflow
