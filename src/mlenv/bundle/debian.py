"""The Debian part of a bundle: the packages the roles install, with everything they depend on, laid out
as a partial mirror of this machine's Debian archives.

apt resolves and downloads with a private state (its own package lists, an empty dpkg status: nothing
counts as installed, so every dependency is fetched), and the bundle keeps Debian's own signed
InRelease files and the Packages indexes they sign. The hosts' apt then checks the bundle exactly as it
checks a Debian mirror: the signature with the Debian keyring it already has, every index and package
by its hash. Nothing in the bundle has to be trusted on the bundle's word.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mlenv.bundle.manifest import AptRepository, BundleError

DEBIAN_FOLDER = "debian"
# On every Debian host (debian-archive-keyring, which apt depends on): what signs Debian's archives.
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


@dataclass(frozen=True)
class IndexTarget:
    """One Packages index apt downloaded: where it came from and where apt keeps it."""

    uri: str
    filename: Path
    repo_uri: str
    base_uri: str
    release: str
    component: str
    meta_key: str


class PrivateApt:
    """apt-get with package lists, caches and a dpkg status of its own under `work`."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.lists = work / "lists"
        self.archives = work / "archives"
        for folder in (self.lists / "partial", self.archives / "partial", work / "cache"):
            folder.mkdir(parents=True, exist_ok=True)
        self.status = work / "status"
        self.status.touch()

    def options(self) -> list[str]:
        settings = {
            "Dir::State::Lists": self.lists,
            "Dir::Cache": self.work / "cache",
            "Dir::Cache::archives": self.archives,
            "Dir::State::status": self.status,
            # The indexes as Debian signed them (uncompressed, named as in InRelease), not recompressed.
            "Acquire::GzipIndexes": "false",
            # Whatever this machine is configured for, the hosts install recommended packages by default.
            "APT::Install-Recommends": "true",
            "APT::Install-Suggests": "false",
        }
        return [option for key, value in settings.items() for option in ("-o", f"{key}={value}")]

    def run(self, *args: str) -> str:
        command = ["apt-get", "-q", *self.options(), *args]
        done = subprocess.run(command, capture_output=True, text=True, check=False, env=_c_locale())
        if done.returncode != 0:
            said = (done.stderr.strip() or done.stdout.strip()).splitlines()[-5:]
            raise BundleError(f"apt-get {args[0]} failed (exit {done.returncode})", problems=said)
        return done.stdout

    def index_targets(self) -> list[IndexTarget]:
        fields = "$(URI)\t$(FILENAME)\t$(REPO_URI)\t$(BASE_URI)\t$(RELEASE)\t$(COMPONENT)\t$(METAKEY)\t$(IDENTIFIER)"
        found = []
        for line in self.run("indextargets", "--format", fields).splitlines():
            uri, filename, repo_uri, base_uri, release, component, meta_key, identifier = line.split("\t")
            if identifier == "Packages":
                found.append(IndexTarget(uri, Path(filename), repo_uri, base_uri, release, component, meta_key))
        return found


def _c_locale() -> dict[str, str]:
    return {**os.environ, "LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive"}


def _list_file(lists: Path, uri: str) -> Path:
    """Where apt keeps the file of `uri` (its URItoFileName: no scheme, '/' as '_')."""
    parts = urlsplit(uri)
    return lists / f"{parts.netloc}{parts.path}".replace("_", "%5f").replace("/", "_")


def _mirror_path(repo_uri: str) -> str:
    """A Debian archive root's folder in the bundle: debian/<host>/<path>."""
    parts = urlsplit(repo_uri)
    return f"{DEBIAN_FOLDER}/{parts.netloc}{parts.path}".rstrip("/")


def signed_hashes(inrelease: str) -> dict[str, str]:
    """The SHA256 section of a Release file: path below the suite → sha256."""
    hashes, inside = {}, False
    for line in inrelease.splitlines():
        if not line.startswith(" "):
            inside = line.startswith("SHA256:")
            continue
        if inside:
            digest, _size, path = line.split()
            hashes[path] = digest
    return hashes


def _verify_signature(inrelease: Path, keyring: str) -> None:
    done = subprocess.run(
        ["gpgv", "--keyring", keyring, str(inrelease)], capture_output=True, text=True, check=False, env=_c_locale()
    )
    if done.returncode != 0:
        raise BundleError(
            f"{inrelease.name} does not verify with {keyring}: only archives signed by Debian can be bundled "
            "(the hosts check them with that keyring)",
            problems=done.stderr.strip().splitlines()[-3:],
        )


def _downloads(listing: str) -> Iterator[tuple[str, str]]:
    """(URI, file name in apt's archives) of each package `--print-uris` lists."""
    for line in listing.splitlines():
        # The hash is left out for some archives (the security one): the line ends after the size.
        found = re.match(r"^'([^']+)' (\S+) \d+(?: \S*)?\s*$", line)
        if found:
            yield found[1], found[2]


def mirror(root: Path, packages: list[str], work: Path) -> tuple[list[AptRepository], int]:
    """Download `packages` and their whole dependency closure into root/debian/, beside the signed indexes
    that list them; returns the repositories and how many packages went in."""
    if shutil.which("apt-get") is None or shutil.which("gpgv") is None:
        raise BundleError("the Debian part of a bundle is made with apt-get and gpgv: run mlenv bundle on Debian")
    apt = PrivateApt(work)
    apt.run("update")
    targets = apt.index_targets()
    if not targets:
        raise BundleError("apt has no Debian sources here (apt-get indextargets lists none)")
    listing = apt.run("install", "--download-only", "--print-uris", "--yes", *packages)
    apt.run("install", "--download-only", "--yes", *packages)
    repo_uris = sorted({target.repo_uri for target in targets}, key=len, reverse=True)
    count = 0
    for uri, name in _downloads(listing):
        repo_uri = next((repo for repo in repo_uris if uri.startswith(repo)), None)
        if repo_uri is None:
            raise BundleError(f"{uri} is not below any of apt's sources ({', '.join(repo_uris)})")
        destination = root / _mirror_path(repo_uri) / unquote(uri[len(repo_uri) :])
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(apt.archives / name, destination)
        count += 1
    for inrelease in {target.base_uri + "InRelease" for target in targets}:
        _verify_signature(_list_file(apt.lists, inrelease), DEBIAN_KEYRING)
    for target in targets:
        _copy_index(root, apt.lists, target)
    return _repositories(targets), count


def _copy_index(root: Path, lists: Path, target: IndexTarget) -> None:
    """The InRelease of the target's suite and its Packages index, checked against the InRelease's hash."""
    suite_dir = root / _mirror_path(target.repo_uri) / "dists" / target.release
    inrelease = _list_file(lists, target.base_uri + "InRelease")
    expected = signed_hashes(inrelease.read_text(errors="replace")).get(target.meta_key)
    actual = hashlib.sha256(target.filename.read_bytes()).hexdigest()
    if expected != actual:
        raise BundleError(f"{target.uri}: the index apt kept is not the one its InRelease signs; run again")
    (suite_dir / target.meta_key).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(inrelease, suite_dir / "InRelease")
    shutil.copyfile(target.filename, suite_dir / target.meta_key)


def _repositories(targets: list[IndexTarget]) -> list[AptRepository]:
    by_root: dict[str, list[IndexTarget]] = {}
    for target in targets:
        by_root.setdefault(target.repo_uri, []).append(target)
    return [
        AptRepository(
            path=_mirror_path(repo_uri),
            suites=sorted({target.release for target in found}),
            components=sorted({target.component for target in found}),
            signed_by=DEBIAN_KEYRING,
        )
        for repo_uri, found in sorted(by_root.items())
    ]


def host_target() -> tuple[str, str]:
    """This machine's Debian codename and dpkg architecture: the hosts the bundle is for."""
    release = Path("/etc/os-release")
    fields = dict(
        line.split("=", 1) for line in release.read_text().splitlines() if "=" in line
    ) if release.is_file() else {}  # fmt: skip
    if fields.get("ID") != "debian" or not fields.get("VERSION_CODENAME"):
        raise BundleError("mlenv bundle runs on Debian (the hosts' release): this machine is not Debian")
    architecture = subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return fields["VERSION_CODENAME"].strip('"'), architecture
