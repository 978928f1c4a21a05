"""An offline install: `mlenv bundle` gathers what a converge downloads, and a host whose network reaches
only the bundle's server converges the whole platform from it, then serves through its proxy."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlenv import outputs as platform
from mlenv.bundle import manifest
from mlenv.health import check_all
from mlenv.hostimage import ensure_image
from mlenv.paths import project_root
from tests.helpers.offline import Site, podman

PREFIX = "mlenv-offline-test"
OUTSIDE = ["http://deb.debian.org/debian/", "https://pypi.org/simple/"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bundle") / "bundle"
    made = subprocess.run(["mlenv", "bundle", str(folder)], capture_output=True, text=True, check=False)
    assert made.returncode == 0, made.stdout + made.stderr
    return folder


@pytest.fixture(scope="module")
def site(bundle: Path) -> Iterator[Site]:
    offline = Site(PREFIX, bundle)
    offline.start()
    yield offline
    offline.remove()


@pytest.fixture(scope="module")
def converged(site: Site, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    state = tmp_path_factory.mktemp("offline-state")
    result, seconds = site.converge(state)
    assert result.ok, result.log
    return state, seconds


def test_the_bundle_matches_its_manifest(bundle: Path) -> None:
    found = manifest.verify(bundle)
    assert found.distribution == "bookworm"
    assert any(name.endswith(".deb") for name in found.files)
    assert {"mlflow", "label-studio", "seaweedfs"} <= found.venvs.keys()
    assert all(found.venvs[name].locked for name in ("mlflow", "label-studio", "seaweedfs"))


def test_a_changed_or_missing_file_is_refused(bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy, ignore=shutil.ignore_patterns("*.whl"), dirs_exist_ok=True)
    index = next(copy.glob("debian/*/*/dists/bookworm/InRelease"))
    index.write_text(index.read_text().replace("Debian", "Debiam", 1))
    with pytest.raises(manifest.BundleError) as refused:
        manifest.verify(copy)
    problems = refused.value.problems
    listed = manifest.read(bundle).files
    left_out = sum(name.endswith(".whl") for name in listed)
    assert f"({left_out + 1} of {len(listed)} files)" in refused.value.message
    altered = "debian/deb.debian.org/debian/dists/bookworm/InRelease"
    assert problems[0] == f"{altered}: its checksum differs from the manifest's"
    assert problems[1].endswith(".whl: missing") and problems[-1] == f"… and {left_out + 1 - 20} more"


def test_the_host_reaches_nothing_but_the_bundle(site: Site) -> None:
    for url in OUTSIDE:
        reached = site.fetch_from_host(url)
        assert reached.returncode != 0, f"{site.host.name} reached {url}: the test host is not offline"
    assert site.fetch_from_host(site.bundle_url + "bundle.json").stdout.strip() == "200"


def test_the_platform_converges_from_the_bundle_alone(
    site: Site, converged: tuple[Path, float], record_property: pytest.RecordProperty
) -> None:
    state, seconds = converged
    record_property("figure: cold converge from the bundle, offline host (s)", round(seconds))
    sources = site.on_host("apt-get", "indextargets", "--format", "$(URI)").stdout.split()
    assert sources and all(uri.startswith(site.bundle_url) for uri in sources), sources
    written = platform.read(state)
    health = check_all(written, state, site.host.address())
    assert health and all(one.ok for one in health), [(one.service, one.detail) for one in health]
    expected = {"mlflow", "label_studio", "object_store", "ml_loop", "model_server"}
    assert expected <= {one.service for one in health}


def test_the_hosts_own_sources_are_left_as_they_were(site: Site, converged: tuple[Path, float]) -> None:
    path = "/etc/apt/sources.list.d/debian.sources"
    image = podman("run", "--rm", ensure_image(project_root()), "cat", path).stdout
    assert image and site.on_host("cat", path).stdout == image
    # Without mlenv's one setting (the role removes it once bundle.url is unset), apt reads them again.
    setting = "/etc/apt/apt.conf.d/05mlenv-bundle"
    assert site.on_host("mv", setting, "/root/05mlenv-bundle.aside").returncode == 0
    try:
        # What `apt-get update` would fetch (the lists of the host's sources went with the switch to the bundle).
        said = site.on_host("apt-get", "--print-uris", "update").stdout
        listed = [line.split("'")[1] for line in said.splitlines() if line.startswith("'")]
    finally:
        site.on_host("mv", "/root/05mlenv-bundle.aside", setting)
    assert listed and all(uri.startswith("http://deb.debian.org/") for uri in listed), listed
