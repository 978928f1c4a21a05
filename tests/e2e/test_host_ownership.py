"""Environments own their hosts: mlenv converges, stops and purges only the container it made for
the environment, and refuses another environment's or one it did not make, with nothing changed."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlenv.hostimage import IMAGE_REPOSITORY

FOREIGN = "mlenv-test-foreign"
OTHERS = "mlenv-test-others"


def podman(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], env=env, capture_output=True, text=True, check=False, timeout=120)


@pytest.fixture
def containers(tool_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """Two created (never started) containers: one of environment `others`, one not made by mlenv."""
    image = f"{IMAGE_REPOSITORY}:latest"
    for name in (FOREIGN, OTHERS):
        podman(tool_env, "rm", "--force", name)
    made = podman(tool_env, "create", "--name", FOREIGN, image, "/sbin/init")
    assert made.returncode == 0, made.stderr
    labels = ["--label", "io.mlenv.role=local-host", "--label", "io.mlenv.environment=others"]
    made = podman(tool_env, "create", "--name", OTHERS, *labels, image, "/sbin/init")
    assert made.returncode == 0, made.stderr
    yield tool_env
    for name in (FOREIGN, OTHERS):
        podman(tool_env, "rm", "--force", name)


def mlenv(
    env: dict[str, str], state: Path, config: Path, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["mlenv", *args], env={**env, "MLENV_STATE_DIR": str(state), "MLENV_CONFIG": str(config)},
        input=stdin, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (OTHERS, f"the container {OTHERS} is the host of environment 'others', not 'mine'"),
        (FOREIGN, f"a container named {FOREIGN} exists but was not made by mlenv: mlenv leaves it alone"),
    ],
)
def test_a_host_that_is_not_this_environments_is_refused(containers, tmp_path: Path, name: str, message: str) -> None:
    config = tmp_path / "mlenv.yaml"
    config.write_text(f"environment: mine\ntls:\n  https_port: 18543\nlocal:\n  host_name: {name}\n")
    state = tmp_path / "state"
    for command in (("up",), ("plan",), ("down",), ("down", "--purge")):
        result = mlenv(containers, state, config, *command, stdin=f"{name}\n")
        assert result.returncode == 1, (command, result.stdout, result.stderr)
        assert message in result.stdout, (command, result.stdout)
        assert "Traceback" not in result.stdout + result.stderr
    # Nothing was touched: both containers are there, never started, and no secret was generated.
    for container in (FOREIGN, OTHERS):
        assert podman(
            containers, "container", "inspect", "--format", "{{.State.Status}}", container
        ).stdout.strip() == ("created")
    assert not (state / "secrets").exists()


def test_the_default_host_is_named_after_the_environment(tmp_path: Path, tool_env: dict[str, str]) -> None:
    config = tmp_path / "mlenv.yaml"
    config.write_text("environment: staging\n")
    result = mlenv(tool_env, tmp_path / "state", config, "plan")
    assert result.returncode == 0, result.stdout
    assert "would create the local host 'mlenv-staging'" in result.stdout
