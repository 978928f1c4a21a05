"""Where each GPU exists: checked before any resource is created, so a pool never asks a region
for an accelerator it does not have. The table covers the regions the project has been used in;
extend it (from `gcloud compute accelerator-types list`, the EC2 instance-type offerings) for others."""

from __future__ import annotations

# GKE accelerator type -> region -> zones offering it.
GKE_ZONES: dict[str, dict[str, list[str]]] = {
    "nvidia-tesla-t4": {
        "europe-west4": ["europe-west4-a", "europe-west4-b", "europe-west4-c"],
        "us-central1": ["us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f"],
        "us-east1": ["us-east1-c", "us-east1-d"],
    },
    "nvidia-l4": {
        "europe-west4": ["europe-west4-a", "europe-west4-b", "europe-west4-c"],
        "us-central1": ["us-central1-a", "us-central1-b", "us-central1-c"],
        "us-east1": ["us-east1-b", "us-east1-c", "us-east1-d"],
    },
    "nvidia-tesla-a100": {
        "europe-west4": ["europe-west4-a", "europe-west4-b"],
        "us-central1": ["us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f"],
    },
    "nvidia-h100-80gb": {
        "europe-west4": ["europe-west4-b", "europe-west4-c"],
        "us-central1": ["us-central1-a", "us-central1-c"],
    },
}

# EKS: GPU instance families (the NVIDIA AMI serves them all) and the regions checked to offer them.
EKS_GPU_FAMILIES = {
    "g4dn": "nvidia-t4",
    "g5": "nvidia-a10g",
    "g6": "nvidia-l4",
    "p4d": "nvidia-a100",
    "p5": "nvidia-h100",
}
EKS_REGIONS = {"us-east-1", "us-west-2", "eu-west-1", "eu-central-1"}


def gke_zones(accelerator: str, region: str) -> list[str]:
    """The zones of region that offer accelerator; ValueError naming what exists otherwise."""
    regions = GKE_ZONES.get(accelerator)
    if regions is None:
        raise ValueError(f"unknown GKE accelerator {accelerator!r}; known: {', '.join(sorted(GKE_ZONES))}")
    if region not in regions:
        raise ValueError(f"{accelerator} is not offered in {region}; regions with it: {', '.join(sorted(regions))}")
    return regions[region]


def eks_accelerator(instance_type: str, region: str) -> str:
    """The GPU of an EKS instance type (e.g. g5.xlarge -> nvidia-a10g); ValueError otherwise."""
    family = instance_type.split(".", 1)[0]
    if family not in EKS_GPU_FAMILIES:
        raise ValueError(f"{instance_type!r} is not a GPU instance type; families: {', '.join(EKS_GPU_FAMILIES)}")
    if region not in EKS_REGIONS:
        raise ValueError(
            f"region {region!r} is not checked for GPU capacity; checked: {', '.join(sorted(EKS_REGIONS))}"
        )
    return EKS_GPU_FAMILIES[family]
