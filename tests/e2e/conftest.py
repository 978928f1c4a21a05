"""The local profile brought up for real by `mlenv up`, once for the whole test run (every e2e
module shares it; tests marked `upgrades_the_stack` run before the other e2e tests, and tests marked
`stops_the_stack` after them). It comes up at the releases before the pins and is upgraded first
(test_upgrade.py). The stack is package-scoped: it is removed as soon as the last e2e test is done,
not left beside the rest.

The stack gets its own container name, published port and state folder, so it never
touches an operator's `mlenv-local`; leftovers of an earlier run are removed first,
and `mlenv down --purge` (answering its typed confirmation) removes it afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import testinfra
import yaml

from mlenv.clients import names_resolve_to
from tests.helpers import browser
from tests.helpers.command_lines import CommandLineSampler

HOST = "mlenv-e2e"
# The trigger service's projects (the e2e tests make them in Label Studio).
LOOP_PROJECTS = [
    {
        "title": "tickets loop e2e",
        "dataset": "tickets-loop",
        "model": "tickets-loop",
        "every": 10,
        "after_seconds": 3600,
    },
    {
        "title": "tickets loop e2e, one label",
        "dataset": "tickets-loop-one-label",
        "model": "tickets-loop",
        "every": 3,
        "after_seconds": 3600,
    },
    # Model-assisted labelling (tests/e2e/test_assisted_labelling.py): trained when Label Studio asks,
    # when production's live accuracy drops below 0.95, and when a version is tagged stable.
    {
        "title": "tickets assisted e2e",
        "dataset": "tickets-assisted",
        "model": "tickets-assisted",
        "every": 100_000,
        "after_seconds": 7 * 86_400,
        "retrain_below": 0.95,
        "live_window": 50,
    },
]
# The first `mlenv up` brings the releases before the pins (mlenv.yaml's `versions:`); test_upgrade.py, first
# of the e2e tests, writes data to them and upgrades the stack to the pins with `mlenv upgrade`.
UPGRADE_FROM: dict[str, str] = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "requirements/upgrade-from.yml").read_text()
)
# What `mlenv status` checks on the stack: every service, and the landing page.
STATUS_SERVICES = ("portal", "mlflow", "label_studio", "object_store", "ml_loop", "model_server")
HTTPS_PORT = 18443
DOMAIN = "mlenv.localhost"
UP_TIMEOUT_S = 60 * 60


@dataclass
class Stack:
    state: Path
    env: dict[str, str]
    up_output: str
    interrupted_output: str = ""
    # Every command line of this machine and of the host while the first converges ran.
    converge_command_lines: tuple[str, ...] = ()
    command_line_samples: int = 0

    def secret(self, relative: str) -> str:
        return (self.state / "secrets" / relative).read_text().split()[0]

    @property
    def ca(self) -> str:
        return str(self.state / "secrets/ca/ca.crt")

    def url(self, service: str, path: str = "/") -> str:
        """A site's address: <service>.<domain>, or the bare domain (the landing page) for ''."""
        return f"https://{service + '.' if service else ''}{DOMAIN}:{HTTPS_PORT}{path}"

    def mlenv(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["mlenv", *args], env=self.env, input=stdin, capture_output=True, text=True, timeout=UP_TIMEOUT_S
        )


def kill_up_after_first_layer(env: dict[str, str]) -> str:
    """Start `mlenv up` and SIGKILL it with its Ansible children in the middle of the converge
    (after the database layer): the run that follows must finish without any clean-up."""
    process = subprocess.Popen(
        ["mlenv", "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    seen = []
    assert process.stdout is not None
    for line in process.stdout:  # bounded: the first layer ends in minutes, or mlenv exits
        seen.append(line)
        if line.lstrip().startswith("✔ Databases"):
            os.killpg(process.pid, signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "".join(seen)
    return "".join(seen)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests that upgrade the shared stack go before every other e2e test, and the tests that stop it after."""
    upgrading = [item for item in items if item.get_closest_marker("upgrades_the_stack")]
    stopping = [item for item in items if item.get_closest_marker("stops_the_stack")]
    rest = [item for item in items if item not in upgrading and item not in stopping]
    e2e = [index for index, item in enumerate(rest) if Path(item.path).parent == Path(__file__).parent]
    first, after = (e2e[0], e2e[-1] + 1) if e2e else (len(rest), len(rest))
    items[:] = [*rest[:first], *upgrading, *rest[first:after], *stopping, *rest[after:]]


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory, tool_env: dict[str, str]) -> Iterator[Stack]:
    state = tmp_path_factory.mktemp("mlenv-state")
    config = state / "mlenv.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "environment": "e2e",
                "tls": {"https_port": HTTPS_PORT},
                "local": {"host_name": HOST},
                "loop": {"projects": LOOP_PROJECTS},
                "versions": {
                    "mlflow": UPGRADE_FROM["mlflow_version"],
                    "label_studio": UPGRADE_FROM["label_studio_version"],
                },
            }
        )
    )
    env = {**tool_env, "MLENV_STATE_DIR": str(state), "MLENV_CONFIG": str(config)}
    env.pop("ANSIBLE_CONFIG", None)
    subprocess.run(["podman", "rm", "--force", HOST], env=env, capture_output=True, check=False)
    stack = Stack(state, env, "")
    with CommandLineSampler(HOST) as sampler:
        stack.interrupted_output = kill_up_after_first_layer(env)
        first = stack.mlenv("up")
    stack.converge_command_lines, stack.command_line_samples = tuple(sorted(sampler.lines)), sampler.samples
    assert first.returncode == 0, f"mlenv up failed:\n{first.stdout[-4000:]}\n{first.stderr[-4000:]}"
    stack.up_output = first.stdout
    yield stack
    stack.mlenv("down", "--purge", stdin=f"{HOST}\n")


@pytest.fixture(scope="package")
def container(stack: Stack):
    """The stack's host, reached straight through podman."""
    return testinfra.get_host(f"podman://{HOST}")


@pytest.fixture(scope="session", autouse=True)
def service_names_resolve_to_loopback() -> Iterator[None]:
    """*.mlenv.localhost is this machine (browsers know it; glibc does not): resolve it in this process."""
    with names_resolve_to(DOMAIN, "127.0.0.1"):
        yield


@pytest.fixture(scope="module")
def driver(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    # make test installs them (scripts/install-system-packages --tests): missing is a broken setup, not a skip.
    assert not browser.missing(), browser.missing()
    with browser.chromium(tmp_path_factory.mktemp("browser-home"), stack.ca) as found:
        yield found
