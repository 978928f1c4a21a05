"""The Kubernetes Pod Security Standards (baseline and restricted, as the admission controller of
Kubernetes 1.30-1.33 enforces them), checked offline on a pod spec: what the API server would refuse
in a namespace labelled pod-security.kubernetes.io/enforce=<level>."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

LEVELS = ("baseline", "restricted")

BASELINE_CAPABILITIES = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}  # fmt: skip
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}  # fmt: skip
RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
}  # fmt: skip
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}


def containers(pod: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from pod.get(key) or []


def violations(pod: dict[str, Any], level: str) -> list[str]:
    """What the level forbids in this pod spec, one line each (empty: admitted)."""
    if level not in LEVELS:
        raise ValueError(f"unknown Pod Security level {level!r}")
    found = baseline_violations(pod)
    if level == "restricted":
        found += restricted_violations(pod)
    return found


def baseline_violations(pod: dict[str, Any]) -> list[str]:
    found = [f"spec.{key} is true" for key in ("hostNetwork", "hostPID", "hostIPC") if pod.get(key)]
    pod_context = pod.get("securityContext") or {}
    found += seccomp_and_selinux("spec.securityContext", pod_context)
    found += [
        f"sysctl {sysctl.get('name')} is not a safe one"
        for sysctl in pod_context.get("sysctls") or []
        if sysctl.get("name") not in SAFE_SYSCTLS
    ]
    found += [f"volume {v.get('name')} is a hostPath" for v in pod.get("volumes") or [] if "hostPath" in v]
    for container in containers(pod):
        where = f"container {container.get('name')}"
        context = container.get("securityContext") or {}
        if context.get("privileged"):
            found.append(f"{where} is privileged")
        added = set((context.get("capabilities") or {}).get("add") or []) - BASELINE_CAPABILITIES
        if added:
            found.append(f"{where} adds capabilities {sorted(added)}")
        if context.get("procMount", "Default") != "Default":
            found.append(f"{where} has procMount {context['procMount']}")
        found += [f"{where} opens host port {p['hostPort']}" for p in container.get("ports") or [] if p.get("hostPort")]
        found += seccomp_and_selinux(where, context)
    return found


def seccomp_and_selinux(where: str, context: dict[str, Any]) -> list[str]:
    found = []
    if (context.get("seccompProfile") or {}).get("type") == "Unconfined":
        found.append(f"{where} runs seccomp Unconfined")
    selinux = context.get("seLinuxOptions") or {}
    if selinux.get("type", "") not in SELINUX_TYPES or selinux.get("user") or selinux.get("role"):
        found.append(f"{where} sets SELinux options {selinux}")
    apparmor = (context.get("appArmorProfile") or {}).get("type")
    if apparmor not in (None, "RuntimeDefault", "Localhost"):
        found.append(f"{where} runs AppArmor {apparmor}")
    return found


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    pod_context = pod.get("securityContext") or {}
    found = [
        f"volume {volume.get('name')} is of kind {sorted(set(volume) - {'name'})}"
        for volume in pod.get("volumes") or []
        if not set(volume) - {"name"} <= RESTRICTED_VOLUMES
    ]
    if pod_context.get("runAsUser") == 0:
        found.append("spec.securityContext runs as user 0")
    for container in containers(pod):
        where = f"container {container.get('name')}"
        context = container.get("securityContext") or {}
        if context.get("allowPrivilegeEscalation") is not False:
            found.append(f"{where} does not set allowPrivilegeEscalation: false")
        if not context.get("runAsNonRoot", pod_context.get("runAsNonRoot")):
            found.append(f"{where} may run as root (runAsNonRoot is not true on it or the pod)")
        if context.get("runAsUser") == 0:
            found.append(f"{where} runs as user 0")
        seccomp = (context.get("seccompProfile") or pod_context.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"{where} has no seccomp profile RuntimeDefault or Localhost (on it or the pod)")
        capabilities = context.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            found.append(f"{where} does not drop ALL capabilities")
        if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
            found.append(f"{where} adds capabilities other than NET_BIND_SERVICE")
    return found
