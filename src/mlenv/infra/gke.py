"""A private GKE cluster with a system CPU pool and labeled, tainted, scale-from-zero GPU pools."""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from mlenv.accelerators import gke_zones
from mlenv.config import Cluster, GpuPool
from mlenv.infra.base import GpuCluster
from mlenv.infra.kubeconfig import exec_kubeconfig
from mlenv.infra.placement import GPU_TAINT_KEY, GPU_TAINT_VALUE, pool_labels

# Control-plane peering range for private nodes (a /28 that must not overlap the VPC).
MASTER_CIDR = "172.16.0.0/28"
NODE_SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]


class GkeGpuCluster(GpuCluster):
    """Outputs: cluster_name, kubeconfig (secret), gpu_pools (docs/architecture.md, "Contracts")."""

    def __init__(self, name: str, spec: Cluster, opts: pulumi.ResourceOptions | None = None) -> None:
        if spec.provider != "gke" or not spec.project:
            raise ValueError("GkeGpuCluster needs a gke cluster spec with a project")
        zones = {pool.name: gke_zones(pool.accelerator, spec.region) for pool in spec.gpu_pools}
        super().__init__("mlenv:cluster:GkeGpuCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        # Nodes run as a dedicated account with only the logging and metrics roles, never the
        # default compute account (project editor).
        self.node_account = gcp.serviceaccount.Account(
            f"{name}-nodes", account_id=f"{name}-nodes"[:30], display_name=f"{name} GKE nodes", opts=child
        )
        for role in ("roles/logging.logWriter", "roles/monitoring.metricWriter", "roles/artifactregistry.reader"):
            gcp.projects.IAMMember(
                f"{name}-nodes-{role.split('/')[1]}",
                project=spec.project,
                role=role,
                member=self.node_account.email.apply(lambda email: f"serviceAccount:{email}"),
                opts=child,
            )

        networks = [
            gcp.container.ClusterMasterAuthorizedNetworksConfigCidrBlockArgs(cidr_block=str(net), display_name=str(net))
            for net in spec.authorized_networks
        ]
        self.cluster = gcp.container.Cluster(
            name,
            project=spec.project,
            location=spec.region,
            remove_default_node_pool=True,
            initial_node_count=1,
            release_channel=gcp.container.ClusterReleaseChannelArgs(channel=spec.release_channel),
            workload_identity_config=gcp.container.ClusterWorkloadIdentityConfigArgs(
                workload_pool=f"{spec.project}.svc.id.goog"
            ),
            ip_allocation_policy=gcp.container.ClusterIpAllocationPolicyArgs(),
            # Dataplane V2 enforces NetworkPolicies (the platform namespaces deny by default).
            datapath_provider="ADVANCED_DATAPATH",
            private_cluster_config=gcp.container.ClusterPrivateClusterConfigArgs(
                enable_private_nodes=True,
                # Without authorized networks the endpoint is private too: nothing public.
                enable_private_endpoint=not networks,
                master_ipv4_cidr_block=MASTER_CIDR,
            ),
            master_authorized_networks_config=gcp.container.ClusterMasterAuthorizedNetworksConfigArgs(
                cidr_blocks=networks
            ),
            opts=child,
        )
        cluster_opts = pulumi.ResourceOptions(parent=self, depends_on=[self.cluster])
        self.system_pool = gcp.container.NodePool(
            f"{name}-system",
            project=spec.project,
            cluster=self.cluster.name,
            location=spec.region,
            autoscaling=gcp.container.NodePoolAutoscalingArgs(min_node_count=1, max_node_count=3),
            node_config=self._node_config(spec.system_machine_type or "e2-standard-4", {"mlenv.io/pool": "system"}),
            management=gcp.container.NodePoolManagementArgs(auto_repair=True, auto_upgrade=True),
            opts=cluster_opts,
        )
        self.gpu_pools = [self._gpu_pool(name, spec, pool, zones[pool.name], cluster_opts) for pool in spec.gpu_pools]

        self._publish(
            spec,
            self.cluster.name,
            pulumi.Output.all(self.cluster.name, self.cluster.endpoint, self.cluster.master_auth).apply(
                lambda args: exec_kubeconfig(
                    args[0], f"https://{args[1]}", args[2]["cluster_ca_certificate"], "gke-gcloud-auth-plugin", []
                )
            ),
        )

    def _node_config(
        self, machine_type: str, labels: dict[str, str], **extra: object
    ) -> gcp.container.NodePoolNodeConfigArgs:
        return gcp.container.NodePoolNodeConfigArgs(
            machine_type=machine_type,
            labels=labels,
            service_account=self.node_account.email,
            oauth_scopes=NODE_SCOPES,
            workload_metadata_config=gcp.container.NodePoolNodeConfigWorkloadMetadataConfigArgs(mode="GKE_METADATA"),
            shielded_instance_config=gcp.container.NodePoolNodeConfigShieldedInstanceConfigArgs(
                enable_secure_boot=True, enable_integrity_monitoring=True
            ),
            **extra,  # type: ignore[arg-type]
        )

    def _gpu_pool(
        self, name: str, spec: Cluster, pool: GpuPool, zones: list[str], opts: pulumi.ResourceOptions
    ) -> gcp.container.NodePool:
        accelerator = gcp.container.NodePoolNodeConfigGuestAcceleratorArgs(
            type=pool.accelerator,
            count=pool.accelerator_count,
            # GKE installs the driver; no device-plugin DaemonSet of our own is needed here.
            gpu_driver_installation_config=gcp.container.NodePoolNodeConfigGuestAcceleratorGpuDriverInstallationConfigArgs(
                gpu_driver_version="LATEST"
            ),
        )
        taint = gcp.container.NodePoolNodeConfigTaintArgs(
            key=GPU_TAINT_KEY, value=GPU_TAINT_VALUE, effect="NO_SCHEDULE"
        )
        return gcp.container.NodePool(
            f"{name}-gpu-{pool.name}",
            project=spec.project,
            cluster=self.cluster.name,
            location=spec.region,
            node_locations=zones,
            autoscaling=gcp.container.NodePoolAutoscalingArgs(
                total_min_node_count=pool.min_nodes, total_max_node_count=pool.max_nodes, location_policy="ANY"
            ),
            node_config=self._node_config(
                pool.machine_type,
                {**pool_labels(pool.name), "mlenv.io/accelerator": pool.accelerator},
                guest_accelerators=[accelerator],
                taints=[taint],
                spot=pool.spot,
            ),
            management=gcp.container.NodePoolManagementArgs(auto_repair=True, auto_upgrade=True),
            opts=opts,
        )
