"""A bucket's objects, every version of them, as one tar stream, and back.

Each member is one version (a delete marker is an empty member), oldest first per key, with its
key, content type, metadata and sha256 in the member's PAX headers: writing and reading both
stream, so a bucket never has to fit in memory or on disk twice. Restoring puts the versions
back in the same order, so the newest is current again and a versioned bucket keeps its history
(the store gives them new version ids).
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from mlenv.errors import UserError

# The PAX headers of a member.
KEY, CONTENT_TYPE, SHA256 = "mlenv.key", "mlenv.content_type", "mlenv.sha256"
DELETE_MARKER, META = "mlenv.deleted", "mlenv.meta."


@dataclass
class Tally:
    """What a bucket holds: the counts compared after a restore."""

    versions: int = 0
    delete_markers: int = 0
    bytes: int = 0
    # Per key, its versions' digests ("-" for a delete marker) in the order added: the last is current.
    contents: dict[str, list[str]] = field(default_factory=dict)

    def add(self, key: str, sha256: str, size: int, *, deleted: bool) -> None:
        if deleted:
            self.delete_markers += 1
        else:
            self.versions += 1
            self.bytes += size
        self.contents.setdefault(key, []).append("-" if deleted else sha256)

    def counts(self) -> dict[str, Any]:
        digest = hashlib.sha256()
        for key in sorted(self.contents):
            *older, current = self.contents[key]
            # Versions written within the same second may list in either order: only the current one's
            # place is certain.
            digest.update(f"{key}\0{current}\0{','.join(sorted(older))}\n".encode())
        return {
            "versions": self.versions,
            "delete_markers": self.delete_markers,
            "keys": len(self.contents),
            "bytes": self.bytes,
            # Of every key, its current content and its older ones: equal only if every version came back.
            "content_sha256": digest.hexdigest(),
        }


def versions_of(s3: Any, bucket: str) -> Iterator[dict[str, Any]]:
    """Every version and delete marker, per key oldest first and the current one last."""
    pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket)
    by_key: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for page in pages:
        for kind in ("Versions", "DeleteMarkers"):
            for entry in page.get(kind, []):
                by_key.setdefault(entry["Key"], {}).setdefault(kind, []).append(
                    {**entry, "deleted": kind != "Versions"}
                )
    for key in sorted(by_key):
        yield from _oldest_first(by_key[key].get("Versions", []), by_key[key].get("DeleteMarkers", []))


def _oldest_first(versions: list[dict[str, Any]], markers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """S3 lists each kind newest first; merged by time (to the second in some stores), the current one last."""

    def age(entry: dict[str, Any]) -> tuple[Any, bool]:
        return entry["LastModified"], bool(entry.get("IsLatest"))

    merged: list[dict[str, Any]] = []
    while versions or markers:
        newer = markers if markers and (not versions or age(markers[0]) > age(versions[0])) else versions
        merged.append(newer.pop(0))
    merged.reverse()
    current = [entry for entry in merged if entry.get("IsLatest")]
    return [entry for entry in merged if not entry.get("IsLatest")] + current


class _Hashing:
    def __init__(self, body: IO[bytes]) -> None:
        self.body, self.hash = body, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.body.read(size)
        self.hash.update(data)
        return data


def export(s3: Any, bucket: str, sink: IO[bytes]) -> dict[str, Any]:
    """Writes the bucket's versions to `sink` as a tar stream; returns its counts."""
    tally = Tally()
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as archive:
        for number, entry in enumerate(versions_of(s3, bucket)):
            info = tarfile.TarInfo(f"{number:08d}")
            info.pax_headers = {KEY: entry["Key"]}
            if entry["deleted"]:
                info.pax_headers[DELETE_MARKER] = "1"
                archive.addfile(info)
                tally.add(entry["Key"], "", 0, deleted=True)
                continue
            found = s3.get_object(Bucket=bucket, Key=entry["Key"], VersionId=entry["VersionId"])
            info.size = found["ContentLength"]
            info.pax_headers[CONTENT_TYPE] = found.get("ContentType", "binary/octet-stream")
            for name, value in found.get("Metadata", {}).items():
                info.pax_headers[META + name] = value
            body = _Hashing(found["Body"])
            # The digest is known only after the content: it travels in a trailing empty member.
            archive.addfile(info, body)  # type: ignore[arg-type]
            digest = body.hash.hexdigest()
            check = tarfile.TarInfo(f"{number:08d}.sha256")
            check.pax_headers = {SHA256: digest}
            archive.addfile(check)
            tally.add(entry["Key"], digest, info.size, deleted=False)
    return tally.counts()


def empty(s3: Any, bucket: str) -> None:
    """Removes every version and delete marker of `bucket`."""
    doomed = [{"Key": entry["Key"], "VersionId": entry["VersionId"]} for entry in versions_of(s3, bucket)]
    for start in range(0, len(doomed), 1000):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed[start : start + 1000], "Quiet": True})


def restore(s3: Any, bucket: str, source: IO[bytes]) -> dict[str, Any]:
    """Replaces the bucket's content by the tar stream's versions; returns the counts restored."""
    tally = Tally()
    empty(s3, bucket)
    with tarfile.open(fileobj=source, mode="r|") as archive:
        pending: tuple[str, str] | None = None
        for member in archive:
            headers = member.pax_headers
            if SHA256 in headers:
                if pending is None:
                    raise UserError(f"the archive of bucket {bucket} is damaged (a checksum without its object)")
                key, digest = pending
                if headers[SHA256] != digest:
                    raise UserError(f"bucket {bucket}: {key} does not match its checksum in the backup")
                pending = None
                continue
            key = headers[KEY]
            if headers.get(DELETE_MARKER):
                s3.delete_object(Bucket=bucket, Key=key)
                tally.add(key, "", 0, deleted=True)
                continue
            content = archive.extractfile(member)
            if content is None:
                raise UserError(f"the archive of bucket {bucket} is damaged ({key} is not a file)")
            metadata = {name.removeprefix(META): value for name, value in headers.items() if name.startswith(META)}
            extra = {"ContentType": headers.get(CONTENT_TYPE, "binary/octet-stream"), "Metadata": metadata}
            body = _Hashing(content)  # type: ignore[arg-type]
            s3.upload_fileobj(body, bucket, key, ExtraArgs=extra)
            digest = body.hash.hexdigest()
            tally.add(key, digest, member.size, deleted=False)
            pending = (key, digest)
    return tally.counts()


def count(s3: Any, bucket: str) -> dict[str, Any]:
    """The bucket's counts as they are now (reads every version)."""
    tally = Tally()
    for entry in versions_of(s3, bucket):
        if entry["deleted"]:
            tally.add(entry["Key"], "", 0, deleted=True)
            continue
        body = _Hashing(s3.get_object(Bucket=bucket, Key=entry["Key"], VersionId=entry["VersionId"])["Body"])
        while body.read(1 << 20):
            pass
        tally.add(entry["Key"], body.hash.hexdigest(), entry["Size"], deleted=False)
    return tally.counts()
