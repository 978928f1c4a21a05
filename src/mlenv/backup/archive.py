"""Backups of one environment, and restores from them.

A backup is a folder `<environment>-<UTC time>` holding, each encrypted with age to the backup
key's recipient: every service database (pg_dump, custom format), Label Studio's media, every
bucket with its versions, and the secrets the databases were made with; then `manifest.json`
(counts and checksums), written last, after which the folder gets its name. The hosts' work is
done by `backup.yml` and `restore.yml` (they also run without mlenv), the buckets' through the
proxy's S3 site here.

A restore checks everything first (manifest, sizes, checksums, the key, every part decrypted)
and changes nothing when a check fails. Then it puts the backup's secrets in place, converges
(so a host lost or purged is made again), runs restore.yml (databases, media), then replaces the
buckets' content; at the end every count is compared with the manifest's.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlenv import __version__, clients, encryption
from mlenv import outputs as platform
from mlenv.backup import buckets
from mlenv.backup.manifest import MANIFEST, Manifest, Part, check_files, read
from mlenv.errors import UserError
from mlenv.files import write_private
from mlenv.reporting import Reporter

# Runs a day-2 playbook on the environment's hosts with its arguments.
Operate = Callable[[str, dict[str, object]], object]
SECRETS = "secrets"
# Host access belongs to the host of the moment, not to the data: a restore keeps this machine's.
NOT_RESTORED = ("ssh",)


def default_key(environment: str) -> Path:
    """Outside the state folder (so outside every backup, and kept by `down --purge`)."""
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "mlenv" / "backup-keys" / f"{environment}.agekey"


@contextmanager
def private_folder(state: Path, prefix: str) -> Iterator[Path]:
    """A 0700 folder in the state folder for plaintext on its way in or out, always removed."""
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=state))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _timestamp() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _stamp(moment: datetime) -> str:
    """A moment as it appears in folder names."""
    return moment.strftime("%Y%m%dT%H%M%SZ")


def backups_in(destination: Path, environment: str) -> list[Path]:
    """The complete backups of `environment` in `destination`, oldest first."""
    if not destination.is_dir():
        return []
    found = [path for path in destination.glob(f"{environment}-*") if (path / MANIFEST).is_file()]
    return sorted(found, key=lambda path: path.name)


def prune(destination: Path, environment: str, keep: int, report: Reporter) -> list[Path]:
    """Removes all but the newest `keep` complete backups (and any unfinished one) of `environment`."""
    removed = backups_in(destination, environment)[:-keep] if keep > 0 else []
    removed += list(destination.glob(f".{environment}-*.partial"))
    for path in removed:
        shutil.rmtree(path)
        report.info(f"retention: removed {path.name}")
    return removed


def _part(folder: Path, relative: str, name: str, plain_sha256: str, counts: dict[str, Any]) -> Part:
    """The manifest's entry of the encrypted file folder/relative."""
    target = folder / relative
    sha256 = encryption.sha256_of(target)
    return Part(name=name, file=relative, bytes=target.stat().st_size, sha256=sha256, plain_sha256=plain_sha256,
                counts=counts)  # fmt: skip


def _seal(plain: Path, folder: Path, relative: str, recipient: str, name: str, counts: dict[str, Any]) -> Part:
    plain_sha256 = encryption.encrypt_file(plain, folder / relative, recipient)
    return _part(folder, relative, name, plain_sha256, counts)


def _secrets_archive(state: Path, target: Path) -> dict[str, Any]:
    secrets, files = state / SECRETS, 0
    with tarfile.open(target, "w") as archive:
        for path in sorted(secrets.rglob("*")):
            relative = path.relative_to(secrets)
            if path.is_file() and relative.parts[0] not in NOT_RESTORED:
                archive.add(path, arcname=str(relative), recursive=False)
                files += 1
    return {"files": files}


def create(
    state: Path,
    environment: str,
    destination: Path,
    key: Path,
    operate: Operate,
    report: Reporter,
    *,
    address: str | None,
) -> Path:
    """A new backup in `destination`; returns its folder."""
    outputs = platform.read(state)
    recipient = encryption.ensure_identity(key)
    created = _timestamp()
    name = f"{environment}-{_stamp(created)}"
    destination.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder = destination / f".{name}.partial"
    folder.mkdir(mode=0o700)
    parts: list[Part] = []
    try:
        with private_folder(state, "backup-") as staging:
            report.info("databases and Label Studio's media: backup.yml on the hosts …")
            operate("backup.yml", {"mlenv_backup_dir": str(staging)})
            found = [(dump, f"postgresql/{dump.stem}") for dump in sorted((staging / "postgresql").glob("*.pgc"))]
            found += [(media, "label_studio/media") for media in (staging / "label_studio").glob("media.tar.gz")]
            for plain, part in found:
                counts = json.loads((plain.parent / f"{part.split('/')[1]}.counts.json").read_text())
                relative = f"{plain.relative_to(staging)}.age"
                parts.append(_seal(plain, folder, relative, recipient, part, counts))
            counts = _secrets_archive(state, staging / "secrets.tar")
            parts.append(_seal(staging / "secrets.tar", folder, "secrets.tar.age", recipient, SECRETS, counts))
        with clients.names_resolve_to(clients.domain_of(outputs), address):
            s3 = clients.s3(outputs, state)
            for bucket in outputs.buckets:
                report.info(f"bucket {bucket} …")
                relative = f"objects/{bucket}.tar.age"
                with encryption.encrypting(folder / relative, recipient) as sink:
                    counts = buckets.export(s3, bucket, sink)  # type: ignore[arg-type]
                parts.append(_part(folder, relative, f"objects/{bucket}", sink.hexdigest, counts))
        manifest = Manifest(
            environment=environment, created=created, mlenv_version=__version__, recipient=recipient, parts=parts
        )
        write_private(folder / MANIFEST, manifest.model_dump_json(indent=2) + "\n")
        final = destination / name
        folder.rename(final)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return final


def verify(folder: Path, key: Path, into: Path, environment: str) -> Manifest:
    """Every check a restore makes before it changes anything; the parts end up decrypted in `into`."""
    manifest = read(folder)
    if manifest.environment != environment:
        raise UserError(
            f"{folder.name} is a backup of the environment {manifest.environment!r}, not {environment!r}: "
            "restore it with that environment's mlenv.yaml"
        )
    check_files(folder, manifest)
    recipient = encryption.recipient_of(key)
    if recipient != manifest.recipient:
        raise UserError(
            f"{key} is not the key {folder.name} was made for (its recipient is {manifest.recipient}); "
            "nothing was changed"
        )
    for part in manifest.parts:
        plain = into / part.file.removesuffix(".age")
        plain.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if encryption.decrypt_file(folder / part.file, plain, key) != part.plain_sha256:
            raise UserError(f"{part.file} decrypts to something else than was backed up; nothing was changed")
    return manifest


def _install_secrets(state: Path, archive: Path, report: Reporter) -> None:
    """The backup's secrets in place of the current ones (kept aside) where they differ."""
    secrets = state / SECRETS
    with tarfile.open(archive) as found:
        members = [member for member in found.getmembers() if member.isfile()]
        differing = [
            member
            for member in members
            if not (secrets / member.name).is_file()
            or (secrets / member.name).read_bytes() != found.extractfile(member).read()  # type: ignore[union-attr]
        ]
        if not differing:
            return
        if secrets.is_dir():
            aside = state / f"secrets.before-restore-{_stamp(_timestamp())}"
            shutil.copytree(secrets, aside)
            aside.chmod(0o700)
            report.info(f"{len(differing)} secret(s) differ from the backup's; the current ones are kept in {aside}")
        for member in differing:
            target = secrets / member.name
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_private(target, found.extractfile(member).read().decode())  # type: ignore[union-attr]


def restore(
    folder: Path,
    state: Path,
    environment: str,
    key: Path,
    *,
    bring_up: Callable[[], object],
    operate: Operate,
    report: Reporter,
    address: str | None,
) -> Manifest:
    """Restores the backup in `folder`; raises when anything does not come back as it was."""
    with private_folder(state, "restore-") as plain:
        manifest = verify(folder, key, plain, environment)
        report.success(f"{folder.name}: {len(manifest.parts)} parts whole and decrypted with {key.name}")
        _install_secrets(state, plain / "secrets.tar", report)
        report.info("converging the hosts with the backup's secrets (mlenv up) …")
        bring_up()
        # The hosts first: a database this inventory does not serve stops the run before any change.
        report.info("databases and Label Studio's media: restore.yml on the hosts …")
        operate("restore.yml", {"mlenv_restore_dir": str(plain)})
        restored: dict[str, dict[str, Any] | None] = {}
        for part in [*manifest.of_kind("postgresql"), *manifest.of_kind("label_studio")]:
            counted = plain / part.kind / f"{part.subject}.restored.json"
            restored[part.name] = json.loads(counted.read_text()) if counted.is_file() else None
        outputs = platform.read(state)
        with clients.names_resolve_to(clients.domain_of(outputs), address):
            s3 = clients.s3(outputs, state)
            for part in manifest.of_kind("objects"):
                report.info(f"bucket {part.subject} …")
                with (plain / part.file.removesuffix(".age")).open("rb") as source:
                    buckets.restore(s3, part.subject, source)
                restored[part.name] = buckets.count(s3, part.subject)
    differences = [
        f"{part.name}: backed up {part.counts}, restored {restored.get(part.name)}"
        for part in manifest.parts
        if part.name != SECRETS and restored.get(part.name) != part.counts
    ]
    if differences:
        raise UserError("the restore did not bring everything back", problems=differences)
    return manifest
