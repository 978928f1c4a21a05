"""An EKS cluster with the same shape as the GKE one: managed node groups on the NVIDIA AMI,
labeled and tainted GPU groups scaling from zero, IMDSv2 only, a restricted endpoint."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from mlenv.accelerators import eks_accelerator
from mlenv.config import Cluster
from mlenv.infra.base import GpuCluster
from mlenv.infra.kubeconfig import exec_kubeconfig
from mlenv.infra.placement import GPU_TAINT_KEY, GPU_TAINT_VALUE, pool_labels

NODE_POLICIES = ("AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly")
GPU_AMI = "AL2023_x86_64_NVIDIA"


def assume_role(service: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
        }
    )


class EksGpuCluster(GpuCluster):
    """Outputs: cluster_name, kubeconfig (secret), gpu_pools (docs/architecture.md, "Contracts")."""

    def __init__(self, name: str, spec: Cluster, opts: pulumi.ResourceOptions | None = None) -> None:
        if spec.provider != "eks" or len(spec.subnet_ids) < 2:
            raise ValueError("EksGpuCluster needs an eks cluster spec with two or more subnet_ids")
        for pool in spec.gpu_pools:
            eks_accelerator(pool.machine_type, spec.region)
        super().__init__("mlenv:cluster:EksGpuCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        cluster_role = aws.iam.Role(f"{name}-cluster", assume_role_policy=assume_role("eks.amazonaws.com"), opts=child)
        cluster_policy = aws.iam.RolePolicyAttachment(
            f"{name}-cluster-policy",
            role=cluster_role.name,
            policy_arn="arn:aws:iam::aws:policy/AmazonEKSClusterPolicy",
            opts=child,
        )
        self.node_role = aws.iam.Role(f"{name}-nodes", assume_role_policy=assume_role("ec2.amazonaws.com"), opts=child)
        node_policies = [
            aws.iam.RolePolicyAttachment(
                f"{name}-nodes-{policy}",
                role=self.node_role.name,
                policy_arn=f"arn:aws:iam::aws:policy/{policy}",
                opts=child,
            )
            for policy in NODE_POLICIES
        ]
        cidrs = [str(network) for network in spec.authorized_networks]
        self.cluster = aws.eks.Cluster(
            name,
            role_arn=cluster_role.arn,
            vpc_config=aws.eks.ClusterVpcConfigArgs(
                subnet_ids=spec.subnet_ids,
                endpoint_private_access=True,
                # Without authorized networks the endpoint is private only.
                endpoint_public_access=bool(cidrs),
                public_access_cidrs=cidrs or None,
            ),
            access_config=aws.eks.ClusterAccessConfigArgs(authentication_mode="API"),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[cluster_policy]),
        )
        # The VPC CNI enforces NetworkPolicies only when asked (the platform namespaces deny by default).
        self.network_policy_agent = aws.eks.Addon(
            f"{name}-vpc-cni",
            cluster_name=self.cluster.name,
            addon_name="vpc-cni",
            configuration_values=json.dumps({"enableNetworkPolicy": "true"}),
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.cluster]),
        )
        # IMDSv2 only, one hop: pods cannot borrow the node's role through the metadata service.
        self.launch_template = aws.ec2.LaunchTemplate(
            f"{name}-nodes",
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=1
            ),
            opts=child,
        )
        group_opts = pulumi.ResourceOptions(parent=self, depends_on=[self.cluster, *node_policies])
        self.system_group = self._group(
            f"{name}-system",
            spec,
            instance_type=spec.system_machine_type or "m6i.large",
            ami_type="AL2023_x86_64_STANDARD",
            labels={"mlenv.io/pool": "system"},
            bounds=(1, 3),
            opts=group_opts,
        )
        self.gpu_groups = [
            self._group(
                f"{name}-gpu-{pool.name}",
                spec,
                instance_type=pool.machine_type,
                ami_type=GPU_AMI,
                labels={**pool_labels(pool.name), "mlenv.io/accelerator": pool.accelerator},
                bounds=(pool.min_nodes, pool.max_nodes),
                taints=[aws.eks.NodeGroupTaintArgs(key=GPU_TAINT_KEY, value=GPU_TAINT_VALUE, effect="NO_SCHEDULE")],
                spot=pool.spot,
                opts=group_opts,
            )
            for pool in spec.gpu_pools
        ]
        self._publish(
            spec,
            self.cluster.name,
            pulumi.Output.all(self.cluster.name, self.cluster.endpoint, self.cluster.certificate_authority).apply(
                lambda args: exec_kubeconfig(
                    args[0],
                    args[1],
                    args[2]["data"],
                    "aws",
                    ["eks", "get-token", "--cluster-name", args[0], "--region", spec.region],
                )
            ),
        )

    def _group(
        self,
        name: str,
        spec: Cluster,
        *,
        instance_type: str,
        ami_type: str,
        labels: dict[str, str],
        bounds: tuple[int, int],
        opts: pulumi.ResourceOptions,
        taints: list[aws.eks.NodeGroupTaintArgs] | None = None,
        spot: bool = False,
    ) -> aws.eks.NodeGroup:
        low, high = bounds
        return aws.eks.NodeGroup(
            name,
            cluster_name=self.cluster.name,
            node_role_arn=self.node_role.arn,
            subnet_ids=spec.subnet_ids,
            ami_type=ami_type,
            instance_types=[instance_type],
            capacity_type="SPOT" if spot else "ON_DEMAND",
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(min_size=low, max_size=high, desired_size=low),
            labels=labels,
            taints=taints or [],
            launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
                id=self.launch_template.id, version=self.launch_template.latest_version.apply(str)
            ),
            # The cluster autoscaler owns the desired size once the group exists.
            opts=pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(ignore_changes=["scalingConfig.desiredSize"])
            ),
        )
