"""Reading certificates the roles make on the controller, with openssl, for the tests."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path


def openssl(*args: str) -> str:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=True).stdout.strip()


def fingerprint(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def days_left(path: Path) -> int:
    """Whole days before the certificate ends (-1: it has ended)."""
    for days in range(400, -1, -1):
        if subprocess.run(["openssl", "x509", "-checkend", str(days * 86400), "-noout", "-in", str(path)],
                          capture_output=True, check=False).returncode == 0:  # fmt: skip
            return days
    return -1


def sign_for_no_time(csr: Path, ca_dir: Path, out: Path) -> None:
    """As if its lifetime had passed: the same request signed by the same CA for no days."""
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_dir / "ca.crt"), "-CAkey", str(ca_dir / "ca.key"),
            "-CAcreateserial", "-days", "0", "-out", str(out), "-copy_extensions", "copy")  # fmt: skip
