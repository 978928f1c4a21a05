"""The mlenv GPU cluster: reads the stack's config, builds the component, exports the contract outputs."""

import pulumi

from mlenv.config import Cluster, validate_section
from mlenv.infra.bootstrap import ClusterBootstrap

config = pulumi.Config()
environment = config.get("environment") or "ml-team"
# Validated before any resource exists: a bad pool, region or accelerator stops here with its key path.
spec = validate_section(Cluster, config.require_object("cluster"), "cluster")

if spec.provider == "gke":
    from mlenv.infra.gke import GkeGpuCluster as Component
else:
    from mlenv.infra.eks import EksGpuCluster as Component

cluster = Component(environment, spec)
# The team's namespace carries the environment's name (the Kubernetes roles use the same).
ClusterBootstrap(f"{environment}-bootstrap", spec, cluster.kubeconfig, team_namespace=environment)
pulumi.export("cluster_name", cluster.cluster_name)
pulumi.export("region", spec.region)
pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("gpu_pools", cluster.gpu_pool_summary)
