"""Control planes and nodes: nothing public, no default identities, no IMDSv1, NetworkPolicies enforced."""

from __future__ import annotations

import json

from pulumi_policy import EnforcementLevel, ResourceValidationArgs, ResourceValidationPolicy

from .common import EC2_LAUNCH_TEMPLATE, EKS_ADDON, EKS_CLUSTER, GKE_CLUSTER, GKE_NODE_POOL, Report, get

EVERYWHERE = {"0.0.0.0/0", "::/0"}


def validate_control_plane(args: ResourceValidationArgs, report: Report) -> None:
    if args.resource_type == GKE_CLUSTER:
        private = args.props.get("privateClusterConfig") or {}
        if not private.get("enablePrivateNodes"):
            report(f"cluster {args.name}: nodes have public IPs; set privateClusterConfig.enablePrivateNodes.")
        blocks = get(args.props, "masterAuthorizedNetworksConfig", "cidrBlocks", default=[]) or []
        cidrs = {block.get("cidrBlock") for block in blocks}
        if not private.get("enablePrivateEndpoint") and (not cidrs or cidrs & EVERYWHERE):
            report(
                f"cluster {args.name}: the control plane is public; list the networks that may reach it "
                "(masterAuthorizedNetworksConfig, not 0.0.0.0/0) or enable the private endpoint."
            )
    elif args.resource_type == EKS_CLUSTER:
        vpc = args.props.get("vpcConfig") or {}
        public = vpc.get("endpointPublicAccess", True)
        cidrs = set(vpc.get("publicAccessCidrs") or ["0.0.0.0/0"])
        if public and cidrs & EVERYWHERE:
            report(
                f"cluster {args.name}: the EKS endpoint is open to the internet; set vpcConfig.publicAccessCidrs "
                "to your networks or endpointPublicAccess false."
            )


def validate_node_identity(args: ResourceValidationArgs, report: Report) -> None:
    if args.resource_type == GKE_NODE_POOL:
        account = get(args.props, "nodeConfig", "serviceAccount", default="") or ""
        if account in {"", "default"} or account.endswith("-compute@developer.gserviceaccount.com"):
            report(
                f"node pool {args.name} runs as the default compute service account (project editor); "
                "give nodeConfig.serviceAccount a dedicated account with only the roles nodes need."
            )
    elif args.resource_type == EC2_LAUNCH_TEMPLATE:
        tokens = get(args.props, "metadataOptions", "httpTokens")
        if tokens != "required":
            report(f"launch template {args.name} allows IMDSv1; set metadataOptions.httpTokens to 'required' (IMDSv2).")


def validate_network_policies(args: ResourceValidationArgs, report: Report) -> None:
    if args.resource_type == GKE_CLUSTER:
        dataplane_v2 = args.props.get("datapathProvider") == "ADVANCED_DATAPATH"
        if not dataplane_v2 and not get(args.props, "networkPolicy", "enabled", default=False):
            report(
                f"cluster {args.name} does not enforce NetworkPolicies: set datapathProvider ADVANCED_DATAPATH "
                "(Dataplane V2) or networkPolicy.enabled."
            )
    elif args.resource_type == EKS_ADDON and args.props.get("addonName") == "vpc-cni":
        try:
            values = json.loads(args.props.get("configurationValues") or "{}")
        except ValueError:
            values = {}
        if str(values.get("enableNetworkPolicy", "false")).lower() != "true":
            report(f"addon {args.name}: the VPC CNI enforces NetworkPolicies only with enableNetworkPolicy 'true'.")


control_plane_not_public = ResourceValidationPolicy(
    name="control-plane-not-public",
    description="Private nodes; a control plane reachable only from authorized networks or privately.",
    validate=validate_control_plane,
    enforcement_level=EnforcementLevel.MANDATORY,
)

node_identity = ResourceValidationPolicy(
    name="node-identity",
    description="GKE nodes never use the default service account; EKS nodes require IMDSv2.",
    validate=validate_node_identity,
    enforcement_level=EnforcementLevel.MANDATORY,
)

network_policies_enforced = ResourceValidationPolicy(
    name="network-policies-enforced",
    description="The cluster enforces the platform's NetworkPolicies (GKE Dataplane V2; EKS VPC CNI policy agent).",
    validate=validate_network_policies,
    enforcement_level=EnforcementLevel.MANDATORY,
)
