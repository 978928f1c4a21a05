"""What a new cluster gets before the platform roles run: namespaces, the GPU priority class, the team
namespace's quota and default limits, and (where the provider does not run one) the NVIDIA device plugin."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from mlenv.config import Cluster
from mlenv.infra.placement import gpu_toleration

PLATFORM_NAMESPACES = ("mlenv-system", "argo", "kserve")
GPU_PRIORITY_CLASS = "mlenv-gpu"
# Pinned here, the one place the cluster program takes it from (mirror it for air-gapped registries).
DEVICE_PLUGIN_IMAGE = "nvcr.io/nvidia/k8s-device-plugin:v0.17.2"
GPU_RESOURCE = "nvidia.com/gpu"


def gpu_quota(spec: Cluster) -> int:
    """Every GPU the pools can hold at their maximum: the team can use them all, never more."""
    return sum(pool.accelerator_count * pool.max_nodes for pool in spec.gpu_pools)


class ClusterBootstrap(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        spec: Cluster,
        kubeconfig: pulumi.Input[str],
        team_namespace: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("mlenv:cluster:Bootstrap", name, None, opts)
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=kubeconfig,
            enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        child = pulumi.ResourceOptions(parent=self, provider=self.provider)

        self.namespaces = {
            namespace: k8s.core.v1.Namespace(
                f"{name}-ns-{namespace}",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=namespace,
                    labels={
                        # Team pods may not run privileged; the platform's own stay at restricted.
                        "pod-security.kubernetes.io/enforce": "baseline"
                        if namespace == team_namespace
                        else "restricted",
                        "pod-security.kubernetes.io/warn": "restricted",
                        "app.kubernetes.io/part-of": "mlenv",
                    },
                ),
                opts=child,
            )
            for namespace in (*PLATFORM_NAMESPACES, team_namespace)
        }
        # Nothing in or out but DNS; each platform role opens what its pods need.
        self.network_policies = [
            policy
            for namespace, created in self.namespaces.items()
            for policy in default_deny(name, namespace, pulumi.ResourceOptions(
                parent=self, provider=self.provider, depends_on=[created]))
        ]  # fmt: skip
        in_team = pulumi.ResourceOptions(
            parent=self, provider=self.provider, depends_on=[self.namespaces[team_namespace]]
        )

        self.priority_class = k8s.scheduling.v1.PriorityClass(
            f"{name}-gpu-priority",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=GPU_PRIORITY_CLASS),
            value=100000,
            global_default=False,
            preemption_policy="PreemptLowerPriority",
            description="GPU training and serving: scheduled before batch CPU work on shared nodes.",
            opts=child,
        )
        self.quota = k8s.core.v1.ResourceQuota(
            f"{name}-team-quota",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="mlenv-team", namespace=team_namespace),
            spec=k8s.core.v1.ResourceQuotaSpecArgs(
                hard={f"requests.{GPU_RESOURCE}": str(gpu_quota(spec)), "pods": "200", "services.loadbalancers": "0"}
            ),
            opts=in_team,
        )
        self.limits = k8s.core.v1.LimitRange(
            f"{name}-team-limits",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="mlenv-team-defaults", namespace=team_namespace),
            spec=k8s.core.v1.LimitRangeSpecArgs(
                limits=[
                    k8s.core.v1.LimitRangeItemArgs(
                        type="Container",
                        default_request={"cpu": "250m", "memory": "256Mi"},
                        default={"cpu": "2", "memory": "4Gi"},
                    )
                ]
            ),
            opts=in_team,
        )
        # GKE installs drivers and its own device plugin on GPU nodes; EKS's NVIDIA AMI has the
        # drivers, the device plugin is ours to run.
        self.device_plugin = device_plugin(name, child) if spec.provider == "eks" else None
        self.register_outputs({"team_namespace": team_namespace})


def default_deny(name: str, namespace: str, opts: pulumi.ResourceOptions) -> list[k8s.networking.v1.NetworkPolicy]:
    def policy(suffix: str, spec: k8s.networking.v1.NetworkPolicySpecArgs) -> k8s.networking.v1.NetworkPolicy:
        return k8s.networking.v1.NetworkPolicy(
            f"{name}-{namespace}-{suffix}",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=f"mlenv-{suffix}", namespace=namespace, labels={"app.kubernetes.io/part-of": "mlenv"}
            ),
            spec=spec,
            opts=opts,
        )

    every_pod = k8s.meta.v1.LabelSelectorArgs()
    dns = k8s.networking.v1.NetworkPolicyEgressRuleArgs(
        to=[
            k8s.networking.v1.NetworkPolicyPeerArgs(
                namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                    match_labels={"kubernetes.io/metadata.name": "kube-system"}
                ),
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels={"k8s-app": "kube-dns"}),
            )
        ],
        ports=[k8s.networking.v1.NetworkPolicyPortArgs(protocol=protocol, port=53) for protocol in ("UDP", "TCP")],
    )
    return [
        policy("default-deny", k8s.networking.v1.NetworkPolicySpecArgs(
            pod_selector=every_pod, policy_types=["Ingress", "Egress"])),
        policy("allow-dns", k8s.networking.v1.NetworkPolicySpecArgs(
            pod_selector=every_pod, policy_types=["Egress"], egress=[dns])),
    ]  # fmt: skip


def device_plugin(name: str, opts: pulumi.ResourceOptions) -> k8s.apps.v1.DaemonSet:
    labels = {"app.kubernetes.io/name": "nvidia-device-plugin", "app.kubernetes.io/part-of": "mlenv"}
    return k8s.apps.v1.DaemonSet(
        f"{name}-nvidia-device-plugin",
        metadata=k8s.meta.v1.ObjectMetaArgs(name="nvidia-device-plugin", namespace="kube-system", labels=labels),
        spec=k8s.apps.v1.DaemonSetSpecArgs(
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels),
            update_strategy=k8s.apps.v1.DaemonSetUpdateStrategyArgs(type="RollingUpdate"),
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
                spec=k8s.core.v1.PodSpecArgs(
                    priority_class_name="system-node-critical",
                    # Only the GPU pools: they carry the accelerator label and the GPU taint.
                    affinity=k8s.core.v1.AffinityArgs(
                        node_affinity=k8s.core.v1.NodeAffinityArgs(
                            required_during_scheduling_ignored_during_execution=k8s.core.v1.NodeSelectorArgs(
                                node_selector_terms=[
                                    k8s.core.v1.NodeSelectorTermArgs(
                                        match_expressions=[
                                            k8s.core.v1.NodeSelectorRequirementArgs(
                                                key="mlenv.io/accelerator", operator="Exists"
                                            )
                                        ]
                                    )
                                ]
                            )
                        )
                    ),
                    tolerations=[k8s.core.v1.TolerationArgs(**gpu_toleration())],
                    containers=[
                        k8s.core.v1.ContainerArgs(
                            name="nvidia-device-plugin",
                            image=DEVICE_PLUGIN_IMAGE,
                            env=[k8s.core.v1.EnvVarArgs(name="FAIL_ON_INIT_ERROR", value="false")],
                            resources=k8s.core.v1.ResourceRequirementsArgs(
                                requests={"cpu": "50m", "memory": "64Mi"}, limits={"memory": "128Mi"}
                            ),
                            security_context=k8s.core.v1.SecurityContextArgs(
                                allow_privilege_escalation=False,
                                capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
                            ),
                            volume_mounts=[
                                k8s.core.v1.VolumeMountArgs(
                                    name="device-plugins", mount_path="/var/lib/kubelet/device-plugins"
                                )
                            ],
                        )
                    ],
                    volumes=[
                        k8s.core.v1.VolumeArgs(
                            name="device-plugins",
                            host_path=k8s.core.v1.HostPathVolumeSourceArgs(path="/var/lib/kubelet/device-plugins"),
                        )
                    ],
                ),
            ),
        ),
        opts=opts,
    )
