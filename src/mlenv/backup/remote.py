"""Backups kept on another S3 endpoint: `s3://<bucket>/<prefix>`, one folder per backup, as on disk.

The client is boto3's own: credentials from its usual chain (AWS_PROFILE, AWS_ACCESS_KEY_ID, …),
the endpoint from AWS_ENDPOINT_URL, the CA from AWS_CA_BUNDLE. Every file goes up before the
manifest, so a backup without a manifest there is one whose upload did not finish.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlenv.backup.manifest import MANIFEST
from mlenv.errors import UserError

SCHEME = "s3://"


@dataclass(frozen=True)
class Remote:
    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> Remote:
        bucket, _, prefix = url.removeprefix(SCHEME).partition("/")
        if not url.startswith(SCHEME) or not bucket:
            raise UserError(f"{url}: a remote destination is s3://<bucket>[/<prefix>]")
        return cls(bucket, prefix.strip("/"))

    def key(self, *parts: str) -> str:
        return "/".join(part for part in (self.prefix, *parts) if part)

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.prefix}".rstrip("/")


def client() -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("s3", config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5}))


def upload(s3: Any, folder: Path, remote: Remote) -> str:
    """The backup folder's files under <prefix>/<its name>/, the manifest last; returns its name."""
    files = sorted(path for path in folder.rglob("*") if path.is_file() and path.name != MANIFEST)
    for path in [*files, folder / MANIFEST]:
        s3.upload_file(str(path), remote.bucket, remote.key(folder.name, str(path.relative_to(folder))))
    return folder.name


def names(s3: Any, remote: Remote, environment: str) -> list[str]:
    """The complete backups of `environment` there, oldest first."""
    found = []
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=remote.bucket, Prefix=remote.key(f"{environment}-"))
    for page in pages:
        for entry in page.get("Contents", []):
            relative = entry["Key"].removeprefix(remote.key("")).lstrip("/")
            name, _, rest = relative.partition("/")
            if rest == MANIFEST:
                found.append(name)
    return sorted(found)


def download(s3: Any, remote: Remote, name: str, into: Path) -> Path:
    """The backup `name` into `into`/<name> (what is there, whole or not: the restore checks it)."""
    folder = into / name
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=remote.bucket, Prefix=remote.key(name) + "/")
    keys = [entry["Key"] for page in pages for entry in page.get("Contents", [])]
    if not keys:
        raise UserError(f"no backup {name} in {remote}")
    for key in keys:
        target = folder / key.removeprefix(remote.key(name) + "/")
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        s3.download_file(remote.bucket, key, str(target))
    return folder


def prune(s3: Any, remote: Remote, environment: str, keep: int) -> list[str]:
    """Removes all but the newest `keep` complete backups of `environment` there."""
    removed = names(s3, remote, environment)[:-keep] if keep > 0 else []
    for name in removed:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=remote.bucket, Prefix=remote.key(name) + "/")
        doomed = [{"Key": entry["Key"]} for page in pages for entry in page.get("Contents", [])]
        for start in range(0, len(doomed), 1000):
            s3.delete_objects(Bucket=remote.bucket, Delete={"Objects": doomed[start : start + 1000], "Quiet": True})
    return removed
