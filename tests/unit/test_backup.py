"""Backups without services: age encryption for real, the manifest's checks, retention, the secrets a
restore puts back, and every refusal (partial, damaged, wrong key, wrong environment) changing nothing.
The databases, buckets and media are backed up and restored for real in tests/e2e/test_backup_restore.py."""

from __future__ import annotations

import io
import json
import re
import shutil
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlenv import encryption
from mlenv.backup import archive, buckets
from mlenv.backup.manifest import MANIFEST, Manifest, Part, check_files, read
from mlenv.cli import main
from mlenv.errors import UserError


class Quiet:
    verbose = False

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str) -> None:
        self.lines.append(message)

    success = warning = error = raw = info


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "test.agekey"
    encryption.ensure_identity(path)
    return path


def test_a_new_identity_is_private_and_kept(key: Path) -> None:
    assert key.stat().st_mode & 0o777 == 0o600
    recipient = encryption.recipient_of(key)
    assert recipient.startswith("age1")
    assert encryption.ensure_identity(key) == recipient  # the same key, not a new one


def test_encrypted_files_decrypt_only_with_their_key(tmp_path: Path, key: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_bytes(b"rows and rows\n" * 10_000)
    sealed = tmp_path / "sealed.age"
    digest = encryption.encrypt_file(plain, sealed, encryption.recipient_of(key))
    assert digest == encryption.sha256_of(plain)
    assert b"rows and rows" not in sealed.read_bytes()
    assert sealed.stat().st_mode & 0o777 == 0o600
    back = tmp_path / "back"
    assert encryption.decrypt_file(sealed, back, key) == digest
    assert back.read_bytes() == plain.read_bytes()

    other = tmp_path / "other.agekey"
    encryption.ensure_identity(other)
    with pytest.raises(UserError, match=r"does not decrypt with .*no identity matched"):
        encryption.decrypt_file(sealed, tmp_path / "wrong", other)
    assert not (tmp_path / "wrong").exists()


def test_a_truncated_file_does_not_decrypt(tmp_path: Path, key: Path) -> None:
    sealed = tmp_path / "sealed.age"
    with encryption.encrypting(sealed, encryption.recipient_of(key)) as sink:
        sink.write(b"x" * 200_000)
    sealed.write_bytes(sealed.read_bytes()[:-1000])
    with pytest.raises(UserError, match="does not decrypt"):
        encryption.decrypt_file(sealed, tmp_path / "back", key)


def test_an_identity_that_is_not_one_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus"
    bogus.write_text("AGE-SECRET-KEY-NOT-REALLY\n")
    with pytest.raises(UserError, match="is not an age identity"):
        encryption.recipient_of(bogus)
    with pytest.raises(UserError, match="no backup key at"):
        encryption.recipient_of(tmp_path / "missing")


def make_backup(destination: Path, key: Path, *, environment: str = "dev", stamp: str = "20261204T100000Z") -> Path:
    """A backup folder as archive.create lays it out (a database dump, the secrets), made without hosts."""
    recipient = encryption.recipient_of(key)
    folder = destination / f"{environment}-{stamp}"
    staging = destination / f"staging-{stamp}"
    (staging / "postgresql").mkdir(parents=True)
    dump = staging / "postgresql" / "mlflow.pgc"
    dump.write_bytes(b"PGDMP custom format, or near enough" * 100)
    secrets = staging / "secrets.tar"
    with tarfile.open(secrets, "w") as found:
        data = b"backup-password\n"
        info = tarfile.TarInfo("postgresql/mlflow")
        info.size = len(data)
        found.addfile(info, io.BytesIO(data))
    parts = [
        archive._seal(dump, folder, "postgresql/mlflow.pgc.age", recipient, "postgresql/mlflow", {"public.runs": 3}),
        archive._seal(secrets, folder, "secrets.tar.age", recipient, "secrets", {"files": 1}),
    ]
    manifest = Manifest(
        environment=environment,
        created=datetime(2026, 12, 4, 10, tzinfo=UTC),
        mlenv_version="test",
        recipient=recipient,
        parts=parts,
    )
    (folder / MANIFEST).write_text(manifest.model_dump_json())
    shutil.rmtree(staging)
    return folder


def test_verify_decrypts_every_part_of_a_whole_backup(tmp_path: Path, key: Path) -> None:
    folder = make_backup(tmp_path / "backups", key)
    into = tmp_path / "plain"
    manifest = archive.verify(folder, key, into, "dev")
    assert [part.name for part in manifest.parts] == ["postgresql/mlflow", "secrets"]
    assert (into / "postgresql/mlflow.pgc").read_bytes().startswith(b"PGDMP")
    assert (into / "secrets.tar").is_file()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda folder: (folder / "postgresql/mlflow.pgc.age").unlink(), "postgresql/mlflow.pgc.age: missing"),
        (lambda folder: _truncate(folder / "secrets.tar.age"), "secrets.tar.age: .* bytes, the manifest says"),
        (lambda folder: _flip_a_byte(folder / "secrets.tar.age"), "secrets.tar.age: its checksum differs"),
    ],
    ids=["missing part", "truncated part", "changed byte"],
)
def test_a_damaged_or_partial_backup_is_refused_before_anything(tmp_path: Path, key: Path, damage, message) -> None:
    folder = make_backup(tmp_path / "backups", key)
    damage(folder)
    into = tmp_path / "plain"
    into.mkdir()
    with pytest.raises(UserError, match="damaged or partial; nothing was changed") as refused:
        archive.verify(folder, key, into, "dev")
    assert any(re.search(message, problem) for problem in refused.value.problems), refused.value
    assert list(into.iterdir()) == []  # nothing was decrypted


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-10])


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_backup_that_did_not_finish_is_refused(tmp_path: Path, key: Path) -> None:
    folder = make_backup(tmp_path / "backups", key)
    (folder / MANIFEST).unlink()
    with pytest.raises(UserError, match=r"has no manifest\.json: it is not a complete backup"):
        read(folder)
    partial = folder.rename(folder.parent / f".{folder.name}.partial")
    with pytest.raises(UserError, match="did not finish"):
        read(partial)
    with pytest.raises(UserError, match="no backup at"):
        read(tmp_path / "nowhere")


def test_a_manifest_this_mlenv_did_not_write_is_refused(tmp_path: Path, key: Path) -> None:
    folder = make_backup(tmp_path / "backups", key)
    found = json.loads((folder / MANIFEST).read_text())
    found["format"] = 99
    (folder / MANIFEST).write_text(json.dumps(found))
    with pytest.raises(UserError, match="is not a manifest this mlenv wrote"):
        read(folder)


def test_the_wrong_key_or_environment_is_refused_before_anything(tmp_path: Path, key: Path) -> None:
    folder = make_backup(tmp_path / "backups", key)
    other = tmp_path / "other.agekey"
    encryption.ensure_identity(other)
    into = tmp_path / "plain"
    into.mkdir()
    with pytest.raises(UserError, match=r"is not the key .* was made for"):
        archive.verify(folder, other, into, "dev")
    with pytest.raises(UserError, match="a backup of the environment 'dev', not 'prod'"):
        archive.verify(folder, key, into, "prod")
    assert list(into.iterdir()) == []


def test_a_part_that_decrypts_to_something_else_is_refused(tmp_path: Path, key: Path) -> None:
    folder = make_backup(tmp_path / "backups", key)
    manifest = read(folder)
    tampered = manifest.model_copy(
        update={"parts": [manifest.parts[0].model_copy(update={"plain_sha256": "0" * 64}), manifest.parts[1]]}
    )
    (folder / MANIFEST).write_text(tampered.model_dump_json())
    with pytest.raises(UserError, match="decrypts to something else"):
        archive.verify(folder, key, tmp_path / "plain", "dev")


def test_check_files_passes_a_whole_backup(tmp_path: Path, key: Path) -> None:
    folder = make_backup(tmp_path / "backups", key)
    check_files(folder, read(folder))  # raises on any difference


def test_retention_keeps_the_newest_complete_backups_of_the_environment(tmp_path: Path, key: Path) -> None:
    destination = tmp_path / "backups"
    made = [make_backup(destination, key, stamp=f"2026120{day}T100000Z") for day in range(1, 5)]
    theirs = make_backup(destination, key, environment="other", stamp="20261201T100000Z")
    unfinished = destination / ".dev-20261205T100000Z.partial"
    unfinished.mkdir()
    report = Quiet()
    removed = archive.prune(destination, "dev", 2, report)
    assert sorted(removed) == sorted([*made[:2], unfinished])
    assert archive.backups_in(destination, "dev") == made[2:]
    assert theirs.is_dir()
    assert archive.prune(destination, "dev", 0, report) == []  # 0 keeps them all
    assert len(report.lines) == 3


def test_a_restore_puts_the_backups_secrets_back_and_keeps_the_current_ones_aside(tmp_path: Path, key: Path) -> None:
    state = tmp_path / "state"
    (state / "secrets/postgresql").mkdir(parents=True)
    (state / "secrets/postgresql/mlflow").write_text("rotated-since\n")
    (state / "secrets/ssh").mkdir()
    (state / "secrets/ssh/id_ed25519").write_text("this machine's key\n")
    folder = make_backup(tmp_path / "backups", key)
    plain = tmp_path / "plain"
    archive.verify(folder, key, plain, "dev")
    report = Quiet()
    archive._install_secrets(state, plain / "secrets.tar", report)
    restored = state / "secrets/postgresql/mlflow"
    assert restored.read_text() == "backup-password\n"
    assert restored.stat().st_mode & 0o777 == 0o600
    assert (state / "secrets/ssh/id_ed25519").read_text() == "this machine's key\n"
    (aside,) = state.glob("secrets.before-restore-*")
    assert (aside / "postgresql/mlflow").read_text() == "rotated-since\n"
    assert "1 secret(s) differ" in report.lines[0]
    # Equal secrets: nothing moves.
    archive._install_secrets(state, plain / "secrets.tar", report)
    assert len(list(state.glob("secrets.before-restore-*"))) == 1


def test_the_secrets_archive_leaves_out_the_access_to_the_host(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "secrets/ssh").mkdir(parents=True)
    (state / "secrets/ssh/id_ed25519").write_text("key")
    (state / "secrets/mlflow").mkdir()
    (state / "secrets/mlflow/admin_password").write_text("pw")
    target = tmp_path / "secrets.tar"
    assert archive._secrets_archive(state, target) == {"files": 1}
    with tarfile.open(target) as found:
        assert found.getnames() == ["mlflow/admin_password"]


def test_the_default_key_is_outside_the_state_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert archive.default_key("dev") == tmp_path / "config/mlenv/backup-keys/dev.agekey"


def cli(tmp_path: Path, *args: str, stdin: str = "") -> object:
    config = tmp_path / "mlenv.yaml"
    config.write_text("environment: dev\n")
    env = {"MLENV_CONFIG": str(config), "MLENV_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "200"}
    return CliRunner().invoke(main, list(args), env=env, input=stdin)


def test_backup_list_shows_the_complete_backups(tmp_path: Path, key: Path) -> None:
    destination = tmp_path / "backups"
    folder = make_backup(destination, key)
    result = cli(tmp_path, "backup", "--list", "--to", str(destination))
    assert result.exit_code == 0, result.output
    assert folder.name in result.output
    assert "│ 2     │ 3" in result.output or " 2 " in result.output  # two parts, three rows


def test_restore_refuses_without_a_backup_or_a_confirmation(tmp_path: Path, key: Path) -> None:
    destination = tmp_path / "backups"
    result = cli(tmp_path, "restore", "--to", str(destination), "--key", str(key))
    assert result.exit_code == 1
    assert "no complete backup of dev in" in result.output
    make_backup(destination, key)
    result = cli(tmp_path, "restore", "--to", str(destination), "--key", str(key), stdin="nope\n")
    assert result.exit_code == 1
    assert "not confirmed; nothing changed" in result.output
    assert not any((tmp_path / "state").rglob("*"))


def test_restore_of_a_damaged_backup_changes_nothing(tmp_path: Path, key: Path) -> None:
    destination = tmp_path / "backups"
    folder = make_backup(destination, key)
    _flip_a_byte(folder / "postgresql/mlflow.pgc.age")
    (tmp_path / "state/secrets/postgresql").mkdir(parents=True)
    (tmp_path / "state/secrets/postgresql/mlflow").write_text("current\n")
    result = cli(tmp_path, "restore", folder.name, "--to", str(destination), "--key", str(key), "--yes")
    assert result.exit_code == 1, result.output
    assert "damaged or partial; nothing was changed" in result.output
    assert "postgresql/mlflow.pgc.age: its checksum differs" in result.output
    assert (tmp_path / "state/secrets/postgresql/mlflow").read_text() == "current\n"
    leftovers = sorted(path.name for path in (tmp_path / "state").iterdir())
    assert leftovers == ["mlenv.lock", "secrets"]  # no plaintext left behind


def test_a_part_knows_its_kind_and_subject() -> None:
    part = Part(
        name="objects/datasets", file="objects/datasets.tar.age", bytes=1, sha256="", plain_sha256="", counts={}
    )
    assert (part.kind, part.subject) == ("objects", "datasets")


def test_restore_check_opens_every_part_and_changes_nothing(tmp_path: Path, key: Path) -> None:
    destination = tmp_path / "backups"
    folder = make_backup(destination, key)
    result = cli(tmp_path, "restore", "--check", "--to", str(destination), "--key", str(key))
    assert result.exit_code == 0, result.output
    assert f"{folder.name}: 2 parts whole; each decrypts to what was backed up" in result.output
    assert sorted(path.name for path in (tmp_path / "state").iterdir()) == []  # nothing decrypted stays


def entry(key: str, second: int, *, latest: bool = False, deleted: bool = False, version: str = "") -> dict:
    return {"Key": key, "LastModified": datetime(2026, 12, 4, 10, 0, second, tzinfo=UTC), "IsLatest": latest,
            "deleted": deleted, "VersionId": version}  # fmt: skip


def test_versions_go_oldest_first_with_the_current_one_last_also_within_one_second() -> None:
    # S3 lists each kind newest first; these three were written within the same second.
    versions = [entry("k", 5, latest=True, version="v3"), entry("k", 5, version="v2"), entry("k", 1, version="v1")]
    markers = [entry("k", 3, deleted=True, version="m1")]
    ordered = [item["VersionId"] for item in buckets._oldest_first(list(versions), list(markers))]
    assert ordered == ["v1", "m1", "v2", "v3"]
    # A delete marker that is current goes last, ahead of a version of the same second.
    ordered = buckets._oldest_first([entry("k", 5, version="v1")], [entry("k", 5, latest=True, deleted=True)])
    assert [item["deleted"] for item in ordered] == [False, True]


def test_bucket_counts_are_equal_only_for_the_same_versions_and_current_ones() -> None:
    def tally(*added: tuple[str, str, bool]) -> dict:
        found = buckets.Tally()
        for key, digest, deleted in added:
            found.add(key, digest, 0 if deleted else len(digest), deleted=deleted)
        return found.counts()

    history = tally(("a", "one", False), ("a", "two", False), ("a", "three", False), ("b", "", True))
    swapped_older = tally(("a", "two", False), ("a", "one", False), ("a", "three", False), ("b", "", True))
    assert history == swapped_older  # older versions of one second may list in either order
    assert history["versions"] == 3 and history["delete_markers"] == 1 and history["keys"] == 2
    other_current = tally(("a", "one", False), ("a", "three", False), ("a", "two", False), ("b", "", True))
    assert history["content_sha256"] != other_current["content_sha256"]
    lost_version = tally(("a", "one", False), ("a", "three", False), ("b", "", True))
    assert history != lost_version
