"""The command blocks of the operator runbooks (docs/runbooks/), read and run as they are written.

A runbook's ```bash blocks are what an operator types. On the pages the index gives the profile
`local` and "yes" under "blocks run by the tests", every block runs as it stands: what differs
between sites is a shell parameter with a message (`${UNIT:?the unit that is down}`), so that a
reader who did not set it gets the message, and the tests set it. The e2e tests run each block
where it belongs (the rotation test runs the rotation page's) and `tests/e2e/test_runbooks.py`
checks at the end that none was left out.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = ROOT / "docs/runbooks"
INDEX = RUNBOOKS / "README.md"
FENCE = re.compile(r"^```(\w*)\s*$")
# An index row: | [page.md](page.md) | runs | profile | blocks run by the tests |
INDEX_ROW = re.compile(
    r"^\| \[(?P<page>[\w.-]+\.md)\]\((?P=page)\) \|[^|]*\| (?P<profile>\w+) \| (?P<tested>[^|]*?) \|$"
)
# Which blocks ran in this test session (the e2e tests share one process: one scope).
ran: set[str] = set()


@dataclass(frozen=True)
class Block:
    page: str
    section: str  # the heading it is under
    text: str
    line: int  # where it starts, for messages

    @property
    def key(self) -> str:
        return f"{self.page}#{self.section}"


@dataclass(frozen=True)
class Page:
    name: str
    profile: str  # local | cloud
    run_by_the_tests: bool


def pages() -> list[Page]:
    """The index's pages."""
    rows = (INDEX_ROW.match(line) for line in INDEX.read_text().splitlines())
    return [Page(row["page"], row["profile"], row["tested"] == "yes") for row in rows if row]


def blocks(page: str) -> list[Block]:
    """The page's shell blocks, in order."""
    found: list[Block] = []
    section, language, start, lines = page, None, 0, []
    for number, line in enumerate((RUNBOOKS / page).read_text().splitlines(), start=1):
        fence = FENCE.match(line.strip())
        if language is None and fence:
            language, start, lines = fence[1], number, []
        elif language is not None and fence and not fence[1]:
            if language in ("bash", "sh"):
                found.append(Block(page, section, "\n".join(lines) + "\n", start))
            language = None
        elif language is not None:
            lines.append(line)
        elif line.startswith("#"):
            section = line.lstrip("#").strip()
    return found


def block(page: str, section: str) -> Block:
    (found,) = [candidate for candidate in blocks(page) if candidate.section == section]
    return found


def run_by_the_tests() -> list[Block]:
    """Every block the tests run: those of the local pages the index says they run."""
    chosen = [page.name for page in pages() if page.profile == "local" and page.run_by_the_tests]
    return [found for page in chosen for found in blocks(page)]


def run(
    found: Block,
    env: dict[str, str],
    *,
    inputs: dict[str, str] | None = None,
    stdin: str | None = None,
    hosts: str | None = None,
    timeout: int = 3600,
) -> subprocess.CompletedProcess[str]:
    """Runs the block with bash (errexit, pipefail) from the repository's root, as an operator's shell
    there would, and records that it ran. `hosts`: lines the machine's /etc/hosts has meanwhile (the
    block runs in a mount namespace of its own where /etc/hosts is a copy, so the machine's is untouched)."""
    command = ["bash", "-euo", "pipefail", "-c", found.text]
    with tempfile.TemporaryDirectory() as scratch:
        if hosts is not None:
            copy = Path(scratch) / "hosts"
            shutil.copyfile("/etc/hosts", copy)
            with copy.open("a") as file:
                file.write(hosts)
            mount = f'mount --bind {copy} /etc/hosts && exec "$@"'
            command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", mount, "sh", *command]
        done = subprocess.run(
            command,
            env={**env, **(inputs or {})},
            cwd=ROOT,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    ran.add(found.key)
    return done
