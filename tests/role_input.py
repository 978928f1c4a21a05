"""Run a role's input validation alone: argument specs and preflight, nothing else.

The play runs in check mode against this machine and selects a tag no task has, so
only the role's always-tagged validation tasks run; a wrong input must stop there
with a message that says what to fix, and the recap must show nothing changed.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

RECAP = re.compile(r"^localhost\s*:.*?changed=(\d+).*?failed=(\d+)", re.MULTILINE)


@dataclass
class ValidationRun:
    returncode: int
    output: str
    changed: int
    failed: int

    @property
    def message(self) -> str:
        """The output with line breaks folded, so a wrapped message can be matched."""
        return " ".join(self.output.split())


def validate_role(role: str, role_vars: dict, *, workdir: Path, env: dict[str, str]) -> ValidationRun:
    playbook = workdir / "validate.yml"
    playbook.write_text(
        yaml.safe_dump([{"name": f"Validate {role}", "hosts": "localhost", "gather_facts": False, "roles": [role]}])
    )
    extra_vars = workdir / "vars.json"
    extra_vars.write_text(json.dumps(role_vars))
    result = subprocess.run(
        [
            "ansible-playbook",
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            "ansible_python_interpreter={{ ansible_playbook_python }}",
            "-e",
            f"@{extra_vars}",
            "--check",
            "--tags",
            "mlenv_validate_only",
            str(playbook),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    output = result.stdout + result.stderr
    recap = RECAP.search(output)
    changed, failed = (int(recap.group(1)), int(recap.group(2))) if recap else (-1, -1)
    return ValidationRun(result.returncode, output, changed, failed)
