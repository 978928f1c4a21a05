"""The mlenv GPU cluster: reads the stack's config, builds the component, exports the contract outputs."""

import pulumi

from mlenv.config import Cluster
from mlenv.infra.gke import GkeGpuCluster

config = pulumi.Config()
environment = config.get("environment") or "ml-team"
# Validated before any resource exists: a bad pool, region or accelerator stops here with its key path.
spec = Cluster.model_validate(config.require_object("cluster"))
if spec.provider != "gke":
    raise ValueError(f"cluster.provider {spec.provider!r}: only gke is implemented so far (EKS is next)")

cluster = GkeGpuCluster(environment, spec)
pulumi.export("cluster_name", cluster.cluster_name)
pulumi.export("region", spec.region)
pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("gpu_pools", cluster.gpu_pool_summary)
