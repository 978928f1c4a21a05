"""A role's tags reach the helper roles it includes: `--tags <role>_install` really installs.

Included roles (dynamic) do not inherit the include's tags; each include of a helper applies
the tag of the task file it stands in. Checked statically for every include, and with
`ansible-playbook --list-tasks --tags …` on site.yml for the tags the roles advertise.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT_ROOT, ROLES_DIR
from tests.unit.test_inventories import settings_layer

# Roles site.yml includes dynamically (Kubernetes play): their task lists are not expanded.
SITE_INCLUDES = {
    "argo_workflows": "Argo Workflows",
    "kserve": "KServe",
    "cluster_metrics": "The cluster.s metrics and GPU alerts",
}
LOCAL = PROJECT_ROOT / "inventories/local/hosts.yml"
HELPERS = {"pip_venv", "systemd_service", "apt_packages", "k8s_reachable", "internal_tls", "service_release"}


def helper_includes() -> list[tuple[str, str, str, dict]]:
    """(role, tag the include is selected by, task name, include_role options) for every include of a
    helper in every task file of every role. The name is empty where the include sits in a file that is
    itself included dynamically (`--list-tasks` does not expand those)."""
    found = []
    for main in sorted(ROLES_DIR.glob("*/tasks/main.yml")):
        role = main.parent.parent.name
        if role in HELPERS:
            continue
        # main.yml's imports, also those inside a block (configure and run, rescued on a failed upgrade).
        tops = yaml.safe_load(main.read_text())
        tops = [inner for task in tops for inner in [task, *task.get("block", [])]]
        imported = {t["ansible.builtin.import_tasks"]: t.get("tags", [""])
                    for t in tops if "ansible.builtin.import_tasks" in t}  # fmt: skip

        def walk(task: dict, inherited: list[str], listed: bool, role: str = role) -> None:
            tags = task.get("tags") or inherited
            for inner in task.get("block", []):
                walk(inner, tags, listed, role)
            include = task.get("ansible.builtin.include_role")
            if include and include["name"] in HELPERS:
                tag = next((t for t in tags if t.startswith(f"{role}_")), "")
                found.append((role, tag, task["name"] if listed else "", include))

        for file in sorted(main.parent.glob("*.yml")):
            for task in yaml.safe_load(file.read_text()) or []:
                # site.yml's first play includes prefetch.yml, tagged <role>_install.
                inherited = imported.get(file.name) or ([f"{role}_install"] if file.name == "prefetch.yml" else [])
                walk(task, inherited, listed=file.name in imported)
    return found


def test_every_helper_include_applies_its_files_tag() -> None:
    includes = helper_includes()
    assert len(includes) >= 10, includes  # the roles do include helpers: the walk found them
    for role, tag, name, include in includes:
        assert tag.startswith(f"{role}_"), (role, name, tag)
        assert include.get("apply", {}).get("tags") == [tag], f"{role}: '{name}' does not apply [{tag}]"


def list_tasks(tool_env, tmp_path: Path, tag: str) -> str:
    result = subprocess.run(
        ["ansible-playbook", "-i", str(settings_layer(tmp_path)), "-i", str(LOCAL), "--list-tasks", "--tags", tag,
         str(PROJECT_ROOT / "ansible/playbooks/site.yml")],
        env={**tool_env, "MLENV_STATE_DIR": str(tmp_path)}, capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    return result.stdout


@pytest.mark.parametrize(
    "tag", sorted({tag for _, tag, _, _ in helper_includes() if re.match(r".*_(install|configure)$", tag)})
)
def test_the_tag_selects_the_helper_includes(tool_env, tmp_path: Path, tag: str) -> None:
    listed = list_tasks(tool_env, tmp_path, tag)
    role = tag.rsplit("_", 1)[0]
    if role in SITE_INCLUDES:  # included by site.yml itself: its include is what the tag must select
        assert re.search(rf"^\s+{SITE_INCLUDES[role]}\tTAGS: \[[^]]*\b{tag}\b", listed, re.MULTILINE), listed
        return
    for include_role, include_tag, name, _ in helper_includes():
        if include_tag == tag and name:
            shown = re.compile(rf"^\s+({include_role} : )?{re.escape(name)}\tTAGS: \[[^]]*\b{tag}\b", re.MULTILINE)
            assert shown.search(listed), f"--tags {tag} leaves out '{name}':\n{listed}"
    assert f"{role} : Check the inputs" in listed  # preflight is `always`
