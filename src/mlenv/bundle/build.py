"""`mlenv bundle DIR`: gather what a converge of this configuration downloads, then write the manifest."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlenv import __version__
from mlenv.bundle import debian, python
from mlenv.bundle.manifest import MANIFEST, BundleError, Manifest, Venv, record, write
from mlenv.config import MlenvConfig, bundled_binary, bundled_manifest
from mlenv.reporting import Reporter

IMAGES_FILE = "images.txt"
# The folders a bundle owns: what is in them and no longer listed is removed when it is made again.
OWNED = (debian.DEBIAN_FOLDER, "python", "files")


def artifacts(config: MlenvConfig, distribution: str, work: Path) -> dict[str, Any]:
    """What a converge of `config` downloads, as the roles render it (ansible/playbooks/artifacts.yml)."""
    from mlenv.paths import project_root

    settings = work / "settings.json"
    # Without the bundle: what is gathered is what the roles read from upstream (or the operator's mirrors).
    settings.write_text(json.dumps(config.model_copy(update={"bundle": None}).ansible_vars()))
    # A cluster's manifests are pinned in the operator's inventory.
    inventory = ["-i", str(config.cloud.inventory)] if config.cloud is not None else []
    target_os = {"bookworm": "Debian-12", "trixie": "Debian-13"}.get(distribution, distribution)
    command = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        "-i", "localhost,", *inventory,
        str(project_root() / "ansible/playbooks/artifacts.yml"),
        "-e", f"output_dir={work}",
        "-e", f"target_os={target_os}",
        "-e", f"@{settings}",
        "-e", "ansible_python_interpreter={{ ansible_playbook_python }}",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BundleError("could not render what the roles download", problems=done.stdout.splitlines()[-8:])
    return json.loads((work / "artifacts.json").read_text())


def fetch(url: str, sha256: str, destination: Path) -> None:
    """Download `url` to `destination`, kept only when its sha256 is `sha256`."""
    import hashlib
    import urllib.request

    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    digest = hashlib.sha256()
    try:
        # mlenv.yaml admits only http(s) URLs here.
        with urllib.request.urlopen(url, timeout=60) as response, partial.open("wb") as handle:  # noqa: S310
            for block in iter(lambda: response.read(1 << 20), b""):
                digest.update(block)
                handle.write(block)
    except OSError as err:
        partial.unlink(missing_ok=True)
        raise BundleError(f"could not download {url}: {err}") from None
    if digest.hexdigest() != sha256:
        partial.unlink()
        raise BundleError(f"{url} has sha256 {digest.hexdigest()}, not the {sha256} mlenv.yaml gives: not bundled")
    partial.replace(destination)


def fetch_binaries(root: Path, config: MlenvConfig) -> dict[str, str]:
    """The binaries the roles download by URL for this configuration (MinIO's server), checked."""
    store = config.object_store
    if store.backend != "minio" or not (store.minio_url and store.minio_sha256):
        return {}
    relative = bundled_binary("minio", store.minio_url)
    fetch(store.minio_url, store.minio_sha256, root / relative)
    return {"minio": relative}


def cluster_manifests(manifests: dict[str, dict[str, Any]], config: MlenvConfig) -> dict[str, dict[str, Any]]:
    """The cluster's upstream manifests to bundle (Argo Workflows, KServe, cert-manager): those the
    inventory pins, none without a cluster; one that applying needs but nobody pinned is an error."""
    if config.cloud is None or config.cloud.cluster is None:
        return {}
    unpinned = [one["pin"] for one in manifests.values() if _true(one["needed"]) and not one["sha256"]]
    if unpinned:
        raise BundleError(
            f"set {', '.join(unpinned)} in {config.cloud.inventory}: the sha256 (sha256sum) of each manifest, "
            "which mlenv bundle checks before keeping it",
        )
    return {name: one for name, one in sorted(manifests.items()) if one["sha256"]}


def fetch_manifests(root: Path, manifests: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Each manifest (cluster_manifests) downloaded and kept only if its sha256 matches."""
    found = {}
    for name, one in manifests.items():
        found[name] = bundled_manifest(name)
        fetch(one["url"], one["sha256"], root / found[name])
    return found


def _true(value: object) -> bool:
    return value is True or str(value).lower() in {"true", "yes", "1"}


def check_destination(root: Path) -> None:
    """A new or empty folder, or a bundle made before (made again in place); never anything else."""
    if root.exists() and not root.is_dir():
        raise BundleError(f"{root} is a file: give a folder for the bundle")
    if root.is_dir() and any(root.iterdir()) and not (root / MANIFEST).is_file():
        raise BundleError(f"{root} holds other files and no {MANIFEST}: give a new or empty folder for the bundle")


def bundle_files(root: Path) -> list[str]:
    """The files the manifest lists: all of the folder but itself and unfinished downloads."""
    return sorted(
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and path.name != MANIFEST and not path.name.endswith(".partial")
    )


def make(root: Path, config: MlenvConfig, report: Reporter) -> Manifest:
    check_destination(root)
    distribution, architecture = debian.host_target()
    python_version = python.check_interpreter(distribution)
    with tempfile.TemporaryDirectory(prefix="mlenv-bundle-") as scratch:
        work = Path(scratch)
        wanted = artifacts(config, distribution, work)
        manifests = cluster_manifests(wanted["manifests"], config)
        root.mkdir(parents=True, exist_ok=True)
        for folder in OWNED:
            shutil.rmtree(root / folder, ignore_errors=True)
        with report.status(f"Debian packages: {', '.join(wanted['packages'])} and what they depend on …"):
            repositories, packages = debian.mirror(root, wanted["packages"], work / "apt")
        report.success(f"Debian: {packages} packages from {len(repositories)} archive(s), with their signed indexes")
    files = root / python.FILES_FOLDER
    files.mkdir(parents=True, exist_ok=True)
    venvs: dict[str, Venv] = {}
    wheels = {name: (venv["requirements"], venv["lock"]) for name, venv in wanted["venvs"].items()}
    wheels |= {name: (requirements, "") for name, requirements in wanted["hashed_venvs"].items()}
    for name, (requirements, lock) in sorted(wheels.items()):
        with report.status(f"Python: the {name} virtualenv …"):
            venvs[name] = python.download_venv(files, requirements, lock)
        how = "from its lock, hash-checked" if venvs[name].locked else "its pins alone (no matching lock)"
        report.info(f"  {name}: {len(venvs[name].files)} files, {how}")
    every_file = sorted({name for venv in venvs.values() for name in venv.files})
    build = python.download_build_tools(files, every_file)
    if build is not None:
        venvs["build-tools"] = build
    binaries = fetch_binaries(root, config)
    bundled_manifests = fetch_manifests(root, manifests)
    for name, relative in (binaries | bundled_manifests).items():
        report.info(f"  {name}: {relative}, sha256 checked")
    images = sorted(set(wanted["images"]))
    (root / IMAGES_FILE).write_text("".join(f"{image}\n" for image in images))
    # Every file hashed once: the index links the distributions with the sha256 their records hold.
    records = {relative: record(root, relative) for relative in bundle_files(root)}
    prefix = python.FILES_FOLDER + "/"
    python.write_index(root, {name.removeprefix(prefix): one.sha256 for name, one in records.items()
                              if name.startswith(prefix)})  # fmt: skip
    records |= {relative: record(root, relative) for relative in bundle_files(root) if relative not in records}
    manifest = Manifest(
        created=datetime.now(UTC),
        mlenv=__version__,
        distribution=distribution,
        architecture=architecture,
        python=python_version,
        apt_repositories=repositories,
        apt_packages=wanted["packages"],
        venvs=venvs,
        binaries=binaries,
        manifests=bundled_manifests,
        images=images,
        files=dict(sorted(records.items())),
    )
    write(root, manifest)
    return manifest
