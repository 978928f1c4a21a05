"""The Debian systemd image behind local hosts: the test hosts and the local profile.

Podman runs it with ``--systemd=always`` so that roles meet a real init system,
exactly as on an operator's server. The image is rebuilt only when its recipe
changes: the tag is a digest of this module, the package list, the apt mirror and
the host's extra CA certificates (which the image trusts, so pip and apt work
behind the same TLS-inspecting proxies as the host).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mlenv.errors import UserError

IMAGE_REPOSITORY = "localhost/mlenv-host"
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "python3",
    "python3-apt",
    "sudo",
    "ca-certificates",
    "iproute2",
    "procps",
    "openssh-server",
)
# Units that have nothing to do inside a container, or fail there and slow boot.
MASKED_UNITS = (
    "getty@.service",
    "console-getty.service",
    "systemd-udevd.service",
    "systemd-udev-trigger.service",
    "systemd-udev-settle.service",
    "systemd-remount-fs.service",
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    "sys-kernel-config.mount",
    "dev-hugepages.mount",
    "systemd-firstboot.service",
)
# Every container gets its own SSH host keys at first boot, never the image's.
SSH_KEYGEN_DROPIN = "[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n"
EXTRA_CA_DIR = Path("/usr/local/share/ca-certificates")
REQUIRED_TOOLS = {
    "podman": "apt-get install podman",
    "runc": "apt-get install runc",
    "debootstrap": "apt-get install debootstrap",
}


class HostImageError(UserError):
    """The image cannot be built; the message says what to install or change."""


@dataclass(frozen=True)
class AptSource:
    mirror: str
    suite: str
    sources_files: tuple[Path, ...] = field(default_factory=tuple)


def read_apt_source(etc: Path = Path("/etc")) -> AptSource:
    """The Debian mirror and suite this machine already uses, so the image uses the same."""
    suite = _os_release(etc).get("VERSION_CODENAME", "bookworm")
    deb822 = etc / "apt/sources.list.d/debian.sources"
    legacy = etc / "apt/sources.list"
    files: list[Path] = []
    mirror = ""
    if deb822.is_file():
        files.append(deb822)
        for line in deb822.read_text().splitlines():
            if line.startswith("URIs:") and not mirror:
                mirror = line.split(":", 1)[1].split()[0]
    if legacy.is_file() and legacy.read_text().strip():
        files.append(legacy)
        for line in legacy.read_text().splitlines():
            parts = line.split()
            if not mirror and len(parts) >= 3 and parts[0] == "deb" and "security" not in parts[1]:
                mirror = parts[1]
    return AptSource(mirror or "http://deb.debian.org/debian", suite, tuple(files))


def _os_release(etc: Path) -> dict[str, str]:
    path = etc / "os-release"
    if not path.is_file():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key: value.strip('"') for key, value in pairs}


def extra_ca_files() -> list[Path]:
    if not EXTRA_CA_DIR.is_dir():
        return []
    return sorted(p for p in EXTRA_CA_DIR.rglob("*.crt") if p.is_file())


def recipe_digest(source: AptSource | None = None) -> str:
    source = source or read_apt_source()
    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(f"{source.mirror}\n{source.suite}\n".encode())
    for ca in extra_ca_files():
        digest.update(ca.read_bytes())
    return digest.hexdigest()[:12]


def image_ref(source: AptSource | None = None) -> str:
    return f"{IMAGE_REPOSITORY}:{recipe_digest(source)}"


def containers_conf(project_root: Path) -> Path:
    return project_root / ".config/containers/containers.conf"


def podman_env(project_root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(containers_conf(project_root)))
    return env


def check_prerequisites() -> None:
    missing = [f"{tool} ({fix})" for tool, fix in REQUIRED_TOOLS.items() if shutil.which(tool) is None]
    if missing:
        raise HostImageError("missing tools for the local systemd hosts: " + ", ".join(missing))
    if os.geteuid() != 0:
        raise HostImageError("building the host image needs root (debootstrap and rootful Podman): run it with sudo")


def image_exists(ref: str, env: dict[str, str]) -> bool:
    return subprocess.run(["podman", "image", "exists", ref], env=env, check=False).returncode == 0


Log = Callable[[str], None]


def ensure_image(project_root: Path, *, force: bool = False, log: Log = lambda _msg: None) -> str:
    """Build the image unless one from the same recipe exists; return its reference.

    The reference is also tagged ``:latest`` so that molecule scenarios find it by a
    stable name.
    """
    check_prerequisites()
    env = podman_env(project_root)
    source = read_apt_source()
    ref = image_ref(source)
    # Test workers and `mlenv up` may ask at the same moment: one builds, the others wait and reuse it.
    cache = Path(os.environ.get("MLENV_CACHE_DIR", Path.home() / ".cache/mlenv"))
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / "host-image.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and image_exists(ref, env):
            log(f"host image {ref} is up to date")
            _tag_latest(ref, env)
            return ref
        log(f"building host image {ref} from {source.mirror} {source.suite}")
        with tempfile.TemporaryDirectory(prefix="mlenv-rootfs-", dir="/var/tmp") as tmp:
            rootfs = Path(tmp) / "rootfs"
            _debootstrap(rootfs, source, log)
            _configure_rootfs(rootfs, source)
            _import(rootfs, ref, env, log)
        _tag_latest(ref, env)
    return ref


def _run(argv: list[str], *, env: dict[str, str] | None = None, **kwargs: object) -> None:
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-20:])
        raise HostImageError(f"{' '.join(argv[:3])} … failed (exit {result.returncode}):\n{tail}")


def _debootstrap(rootfs: Path, source: AptSource, log: Log) -> None:
    log("debootstrap (minbase) …")
    _run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            source.suite,
            str(rootfs),
            source.mirror,
        ]
    )


def _configure_rootfs(rootfs: Path, source: AptSource) -> None:
    apt_dir = rootfs / "etc/apt"
    (apt_dir / "sources.list").write_text("")
    for src in source.sources_files:
        target = apt_dir / src.relative_to("/etc/apt")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
    # The image trusts what the host trusts, so TLS through the same proxies works.
    ca_dir = rootfs / "usr/local/share/ca-certificates"
    ca_dir.mkdir(parents=True, exist_ok=True)
    for ca in extra_ca_files():
        shutil.copyfile(ca, ca_dir / ca.name)
    _run(["chroot", str(rootfs), "update-ca-certificates"])
    # systemd generates a fresh machine id at each container's first boot.
    (rootfs / "etc/machine-id").write_text("")
    units = rootfs / "etc/systemd/system"
    for unit in MASKED_UNITS:
        link = units / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    for key in (rootfs / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    dropin = units / "ssh.service.d"
    dropin.mkdir(parents=True, exist_ok=True)
    (dropin / "10-mlenv-hostkeys.conf").write_text(SSH_KEYGEN_DROPIN)
    (rootfs / "etc/default/locale").write_text("LANG=C.UTF-8\n")
    # Package lists for every configured suite (updates and security too), as on a real
    # server: a host whose lists are empty but fresh would make `cache_valid_time` skip
    # the update that it needs.
    _run(["chroot", str(rootfs), "apt-get", "update", "-qq"])
    _run(["chroot", str(rootfs), "apt-get", "clean"])


def _import(rootfs: Path, ref: str, env: dict[str, str], log: Log) -> None:
    log(f"podman import → {ref}")
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    try:
        _run(
            [
                "podman",
                "import",
                "--change",
                'CMD ["/sbin/init"]',
                "--change",
                "STOPSIGNAL SIGRTMIN+3",
                "--change",
                f"LABEL io.mlenv.recipe={ref.rsplit(':', 1)[1]}",
                "-",
                ref,
            ],
            env=env,
            stdin=tar.stdout,
        )
    finally:
        if tar.stdout:
            tar.stdout.close()
        tar.wait()


def _tag_latest(ref: str, env: dict[str, str]) -> None:
    _run(["podman", "tag", ref, f"{IMAGE_REPOSITORY}:latest"], env=env)


def main() -> int:
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="Build (or reuse) the local Debian systemd host image.")
    parser.add_argument("--force", action="store_true", help="rebuild even if the recipe has not changed")
    parser.add_argument("--project-root", type=Path, default=Path.cwd())
    parser.add_argument("--print-ref", action="store_true", help="only print the image reference for this recipe")
    args = parser.parse_args()
    if args.print_ref:
        print(image_ref())
        return 0
    try:
        ref = ensure_image(args.project_root, force=args.force, log=lambda msg: print(msg, file=sys.stderr))
    except HostImageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(ref)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
