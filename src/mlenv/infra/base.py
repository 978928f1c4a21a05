"""What every GPU cluster component publishes: the cluster program's output contract (docs/architecture.md)."""

from __future__ import annotations

import pulumi

from mlenv.config import Cluster
from mlenv.infra.placement import pool_summary


class GpuCluster(pulumi.ComponentResource):
    cluster_name: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    gpu_pool_summary: list[dict[str, object]]

    def _publish(self, spec: Cluster, cluster_name: pulumi.Output[str], kubeconfig: pulumi.Output[str]) -> None:
        self.cluster_name = cluster_name
        # A secret: the program exports it, and it must never show in plain text in the state or logs.
        self.kubeconfig = pulumi.Output.secret(kubeconfig)
        self.gpu_pool_summary = [
            pool_summary(pool.name, pool.machine_type, pool.accelerator, pool.min_nodes, pool.max_nodes)
            for pool in spec.gpu_pools
        ]
        self.register_outputs(
            {"cluster_name": self.cluster_name, "kubeconfig": self.kubeconfig, "gpu_pools": self.gpu_pool_summary}
        )
