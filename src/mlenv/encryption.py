"""Files encrypted at rest with age (the `age` CLI, Debian's package): streamed, never held in memory.

A backup is encrypted to a public key (the recipient); only the identity file, kept outside the
backup, decrypts it. Both tools read the identity from its file: no key on a command line.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, BinaryIO

from mlenv.errors import UserError
from mlenv.files import write_private

CHUNK = 1 << 20


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise UserError(f"`{name}` is missing: install Debian's age package (apt-get install age)")
    return found


def ensure_identity(path: Path) -> str:
    """The recipient of the identity in `path`, made (0600) when there is none yet."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        made = subprocess.run([_tool("age-keygen")], capture_output=True, text=True, check=False)
        if made.returncode != 0:
            raise UserError(f"age-keygen failed: {made.stderr.strip()}")
        write_private(path, made.stdout)
    return recipient_of(path)


def recipient_of(path: Path) -> str:
    if not path.is_file():
        raise UserError(f"no backup key at {path}: give the identity file the backup was made for (--key)")
    found = subprocess.run([_tool("age-keygen"), "-y", str(path)], capture_output=True, text=True, check=False)
    if found.returncode != 0:
        raise UserError(f"{path} is not an age identity: {found.stderr.strip()}")
    return found.stdout.strip()


class Digest:
    """A write-through file object that counts and hashes what passes."""

    def __init__(self, sink: IO[bytes]) -> None:
        self.sink, self.hash, self.size = sink, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        return self.sink.write(data)

    def flush(self) -> None:
        self.sink.flush()

    @property
    def hexdigest(self) -> str:
        return self.hash.hexdigest()


@contextmanager
def encrypting(target: Path, recipient: str) -> Iterator[Digest]:
    """Write plaintext into the yielded object; `target` receives it encrypted (0600). The object's
    digest is the plaintext's."""
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    target.touch(mode=0o600)
    process = subprocess.Popen(
        [_tool("age"), "--encrypt", "--recipient", recipient, "--output", str(target)],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdin is not None
    digest = Digest(process.stdin)
    try:
        yield digest
    except BaseException:
        process.kill()
        process.wait()
        target.unlink(missing_ok=True)
        raise
    process.stdin.close()
    error = process.stderr.read().decode() if process.stderr else ""
    if process.wait() != 0:
        target.unlink(missing_ok=True)
        raise UserError(f"age could not encrypt {target.name}: {error.strip()}")


def encrypt_file(source: Path, target: Path, recipient: str) -> str:
    """`source` encrypted into `target`; returns the plaintext's sha256."""
    with source.open("rb") as plain, encrypting(target, recipient) as sink:
        shutil.copyfileobj(plain, sink, CHUNK)  # type: ignore[misc]
    return sink.hexdigest


def decrypt_file(source: Path, target: Path, identity: Path) -> str:
    """`source` decrypted into `target` (0600); returns the plaintext's sha256. A wrong key or a
    damaged file is a UserError, and `target` is removed."""
    target.touch(mode=0o600)
    digest = hashlib.sha256()
    with source.open("rb") as sealed, target.open("wb") as plain:
        process = subprocess.Popen(
            [_tool("age"), "--decrypt", "--identity", str(identity)],
            stdin=sealed,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert process.stdout is not None
        for chunk in iter(lambda: _read(process.stdout), b""):  # type: ignore[arg-type]
            digest.update(chunk)
            plain.write(chunk)
        error = process.stderr.read().decode() if process.stderr else ""
    if process.wait() != 0:
        target.unlink(missing_ok=True)
        raise UserError(f"{source.name} does not decrypt with {identity}: {error.strip().removeprefix('age: ')}")
    return digest.hexdigest()


def _read(stream: BinaryIO) -> bytes:
    return stream.read(CHUNK)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
