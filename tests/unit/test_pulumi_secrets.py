"""Stack secrets reach the Pulumi CLI on standard input, never on its command line (which every user
of the machine can read in `ps`). The CLI cannot run here: a recording stand-in takes its place, and
what is checked is what mlenv hands it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from pulumi import automation as auto

from mlenv.runners.pulumi import ProgramRun, PulumiRunError, PulumiWorkspace, StackValue, set_secret_config

SECRET = "glpat-not-on-any-command-line"


def recording_cli(folder: Path, *, exit_code: int = 0) -> tuple[Path, Path]:
    record = folder / "calls.jsonl"
    cli = folder / "pulumi"
    cli.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"with open({str(record)!r}, 'a') as out:\n"
        "    out.write(json.dumps({'argv': sys.argv[1:], 'stdin': sys.stdin.read(), 'cwd': os.getcwd(),\n"
        "                          'backend': os.environ.get('PULUMI_BACKEND_URL')}) + '\\n')\n"
        f"sys.stderr.write('error: no stack named dev') if {exit_code} else None\n"
        f"sys.exit({exit_code})\n"
    )
    cli.chmod(0o755)
    return cli, record


def calls(record: Path) -> list[dict]:
    return [json.loads(line) for line in record.read_text().splitlines()]


def workspace_of(cli: Path, work_dir: Path) -> SimpleNamespace:
    return SimpleNamespace(
        pulumi_command=SimpleNamespace(command=str(cli)),
        work_dir=str(work_dir),
        env_vars={"PULUMI_BACKEND_URL": "file:///b"},
    )


def test_a_secret_goes_on_standard_input(tmp_path):
    cli, record = recording_cli(tmp_path)
    set_secret_config(workspace_of(cli, tmp_path), "dev", "gitlab:token", SECRET)
    (call,) = calls(record)
    assert call["argv"] == ["config", "set", "--secret", "--stack", "dev", "gitlab:token"]
    assert call["stdin"] == SECRET
    assert (call["cwd"], call["backend"]) == (str(tmp_path), "file:///b")


def test_a_refused_secret_is_an_error_to_fix_that_does_not_show_the_value(tmp_path):
    cli, _ = recording_cli(tmp_path, exit_code=255)
    with pytest.raises(PulumiRunError) as raised:
        set_secret_config(workspace_of(cli, tmp_path), "dev", "gitlab:token", SECRET)
    assert "pulumi config set --secret gitlab:token failed: error: no stack named dev" in str(raised.value)
    assert SECRET not in str(raised.value)


def test_a_program_runs_plain_values_together_and_each_secret_by_standard_input(tmp_path, monkeypatch):
    cli, record = recording_cli(tmp_path)
    plain_calls: list[dict] = []
    stack = SimpleNamespace(
        name="dev", workspace=workspace_of(cli, tmp_path), set_all_config=lambda config: plain_calls.append(config)
    )
    monkeypatch.setattr(auto, "create_or_select_stack", lambda **_: stack)
    run = ProgramRun(PulumiWorkspace(tmp_path, tmp_path / "state"), "gitlab", "dev", tmp_path / "log")
    run._stack({"gitlab:baseUrl": StackValue("https://gitlab.example.com/"), "gitlab:token": StackValue(SECRET, True)})
    assert [{key: value.value for key, value in config.items()} for config in plain_calls] == [
        {"gitlab:baseUrl": "https://gitlab.example.com/"}
    ]
    assert all(not value.secret for config in plain_calls for value in config.values())
    (secret_call,) = calls(record)
    assert SECRET not in " ".join(secret_call["argv"]) and secret_call["stdin"] == SECRET
