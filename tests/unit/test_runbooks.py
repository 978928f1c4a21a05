"""The runbooks' command blocks: every page indexed, every block valid bash, and the blocks the e2e
tests run written to run as they stand (the e2e tests run them: tests/e2e/test_runbooks.py)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.helpers import runbooks

PLACEHOLDER = re.compile(r"<[a-z][^<>]*>|…")


def test_every_page_is_in_the_index_and_every_indexed_page_exists() -> None:
    indexed = [page.name for page in runbooks.pages()]
    on_disk = sorted(path.name for path in runbooks.RUNBOOKS.glob("*.md") if path.name != "README.md")
    assert sorted(indexed) == on_disk
    assert {page.profile for page in runbooks.pages()} <= {"local", "cloud"}
    assert runbooks.run_by_the_tests(), "no page's blocks are run by the tests"


@pytest.mark.parametrize("page", [page.name for page in runbooks.pages()])
def test_every_block_is_valid_bash(page: str) -> None:
    for block in runbooks.blocks(page):
        checked = subprocess.run(["bash", "-n"], input=block.text, capture_output=True, text=True)
        assert checked.returncode == 0, f"{page}:{block.line}: {checked.stderr}"


@pytest.mark.parametrize("block", runbooks.run_by_the_tests(), ids=lambda block: block.key)
def test_the_blocks_the_tests_run_are_written_to_run(block: runbooks.Block) -> None:
    for offset, line in enumerate(block.text.splitlines(), start=1):
        where = f"{block.page}:{block.line + offset}"
        assert not line.startswith("$ "), f"{where}: a prompt is not a command (leave the `$ ` out)"
        command = line.split(" #", 1)[0]
        assert not PLACEHOLDER.search(command), f"{where}: write what varies as ${{NAME:?what it is}}: {line}"


@pytest.mark.parametrize(
    "page", [page.name for page in runbooks.pages() if page.profile == "local" and page.run_by_the_tests]
)
def test_commands_on_the_pages_the_tests_run_are_in_bash_blocks(page: str) -> None:
    """A `console` block (`$ command`) would be a command no test runs."""
    text = (runbooks.RUNBOOKS / page).read_text()
    assert "```console" not in text and "```shell" not in text, f"{page}: write commands in ```bash blocks"


def test_each_block_the_tests_run_has_a_section_of_its_own() -> None:
    keys = [block.key for block in runbooks.run_by_the_tests()]
    assert len(keys) == len(set(keys)), sorted(key for key in keys if keys.count(key) > 1)


def test_blocks_are_the_shell_fences_under_their_headings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "page.md").write_text(
        "# Page\n\n```bash\nmlenv up\n```\n\n## Look\nSome text.\n```yaml\nloop: {}\n```\n"
        "```sh\nmlenv status\nmlenv credentials\n```\n```text\nan answer\n```\n"
    )
    monkeypatch.setattr(runbooks, "RUNBOOKS", tmp_path)
    found = runbooks.blocks("page.md")
    assert [(block.section, block.text, block.line) for block in found] == [
        ("Page", "mlenv up\n", 3),
        ("Look", "mlenv status\nmlenv credentials\n", 12),
    ]
    assert PLACEHOLDER.search("mlenv restore <backup>") and PLACEHOLDER.search("export KEY=…")
    assert not PLACEHOLDER.search('journalctl -u "${UNIT:?the unit}" <<< x')


def test_a_block_runs_with_bash_stops_at_the_first_failure_and_is_recorded(tmp_path: Path) -> None:
    block = runbooks.Block("page.md", "Try", 'echo "one ${WHO:?who it greets}"\nfalse\necho two\n', 1)
    missing = runbooks.run(block, {"PATH": "/usr/bin:/bin"})
    assert missing.returncode != 0 and "who it greets" in missing.stderr
    done = runbooks.run(block, {"PATH": "/usr/bin:/bin"}, inputs={"WHO": "you"})
    assert done.returncode == 1 and done.stdout == "one you\n"  # errexit: `echo two` never ran
    assert "page.md#Try" in runbooks.ran
