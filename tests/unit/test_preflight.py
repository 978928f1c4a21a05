"""Free disk is checked on every `up`: the whole stack's need for a new host, an upgrade's for one that exists."""

from __future__ import annotations

import shutil
from collections import namedtuple

import pytest

from mlenv import preflight
from mlenv.config import MlenvConfig

Usage = namedtuple("Usage", "total used free")


@pytest.mark.parametrize(("host_exists", "free_gib", "ok", "fix"), [
    (False, 5.0, False, "free 6 GiB or more"),
    (False, 7.0, True, "free 6 GiB or more"),
    (True, 1.5, False, "free 2 GiB or more"),
    (True, 3.0, True, "free 2 GiB or more"),
])  # fmt: skip
def test_free_disk_is_checked_whether_the_host_exists_or_not(monkeypatch, host_exists, free_gib, ok, fix):
    monkeypatch.setattr(shutil, "disk_usage", lambda _: Usage(0, 0, int(free_gib * preflight.GIB)))
    findings = preflight.run(MlenvConfig(), host_exists=host_exists, port_owned=True)
    (disk,) = [finding for finding in findings if finding.check.startswith("disk")]
    assert (disk.ok, disk.fix, disk.detail) == (ok, fix, f"{free_gib:.1f} GiB free")
