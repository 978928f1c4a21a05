"""A playbook run through ansible-runner for real leaves no copy of the operator's environment behind:
its artifacts keep the command and the names of the variables, never their values."""

from __future__ import annotations

import json
import sys

from mlenv.runners.ansible import forget_runs, run_playbook

SECRET = "glpat-operator-token-never-on-disk"


def test_a_run_keeps_no_value_of_the_environment(tmp_path, monkeypatch, tool_env):
    for name, value in tool_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GITLAB_TOKEN", SECRET)
    playbook = tmp_path / "play.yml"
    playbook.write_text("- hosts: localhost\n  gather_facts: false\n  tasks:\n    - ansible.builtin.ping:\n")
    runs = tmp_path / "state" / "ansible-runner"
    hosts = tmp_path / "hosts.ini"
    hosts.write_text("localhost ansible_connection=local\n")
    result = run_playbook(
        playbook, inventory=hosts, private_data_dir=runs,
        envvars={"ANSIBLE_PYTHON_INTERPRETER": sys.executable},
    )  # fmt: skip
    assert result.rc == 0, result.log.read_text()[-2000:]
    written = [path for path in runs.rglob("*") if path.is_file()]
    assert any(path.name == "command" for path in written)
    for path in written:
        assert SECRET not in path.read_text(errors="replace"), path
    command = json.loads(next(path for path in written if path.name == "command").read_text())
    assert "GITLAB_TOKEN" in command["env"] and command["command"][0].endswith("ansible-playbook")
    assert not (runs / "env" / "envvars").exists()
    for path in [runs, *runs.rglob("*")]:
        assert path.stat().st_mode & 0o077 == 0, path
    forget_runs(tmp_path / "state")
    assert not runs.exists()


def test_a_run_killed_before_it_was_sealed_is_sealed_by_the_next(tmp_path, monkeypatch, tool_env):
    for name, value in tool_env.items():
        monkeypatch.setenv(name, value)
    runs = tmp_path / "ansible-runner"
    killed = runs / "artifacts" / "killed-run"
    killed.mkdir(parents=True)
    (killed / "command").write_text(json.dumps({"command": ["ansible-playbook"], "env": {"GITLAB_TOKEN": SECRET}}))
    playbook = tmp_path / "play.yml"
    playbook.write_text("- hosts: localhost\n  gather_facts: false\n  tasks:\n    - ansible.builtin.ping:\n")
    hosts = tmp_path / "hosts.ini"
    hosts.write_text("localhost ansible_connection=local\n")
    result = run_playbook(playbook, inventory=hosts, private_data_dir=runs,
                          envvars={"ANSIBLE_PYTHON_INTERPRETER": sys.executable})  # fmt: skip
    assert result.rc == 0
    assert SECRET not in (killed / "command").read_text()
    assert json.loads((killed / "command").read_text())["env"] == ["GITLAB_TOKEN"]
    assert (killed / "command").stat().st_mode & 0o077 == 0
