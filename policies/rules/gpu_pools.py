"""GPU pools: only GPU work lands there (label + taint), and idle GPUs cost nothing (from 0, bounded)."""

from __future__ import annotations

from pulumi_policy import EnforcementLevel, PolicyConfigSchema, ResourceValidationArgs, ResourceValidationPolicy

from mlenv.infra.placement import GPU_TAINT_KEY, GPU_TAINT_VALUE, POOL_LABEL

from .common import EKS_NODE_GROUP, Report, get, is_gpu_pool

DEFAULT_MAX_NODES = 10


def _taints(args: ResourceValidationArgs) -> list[dict]:
    if args.resource_type == EKS_NODE_GROUP:
        return list(args.props.get("taints") or [])
    return list(get(args.props, "nodeConfig", "taints", default=[]) or [])


def _labels(args: ResourceValidationArgs) -> dict:
    if args.resource_type == EKS_NODE_GROUP:
        return dict(args.props.get("labels") or {})
    return dict(get(args.props, "nodeConfig", "labels", default={}) or {})


def validate_label_and_taint(args: ResourceValidationArgs, report: Report) -> None:
    if not is_gpu_pool(args):
        return
    if not _labels(args).get(POOL_LABEL):
        report(f"GPU pool {args.name} has no `{POOL_LABEL}` label: add {POOL_LABEL}=<pool name> to its node labels.")
    wanted = [
        taint
        for taint in _taints(args)
        if taint.get("key") == GPU_TAINT_KEY
        and taint.get("value") == GPU_TAINT_VALUE
        and taint.get("effect") == "NO_SCHEDULE"
    ]
    if not wanted:
        report(
            f"GPU pool {args.name} is not tainted: add the taint {GPU_TAINT_KEY}={GPU_TAINT_VALUE}:NoSchedule "
            "so that only pods tolerating it (GPU work) are placed there."
        )


def _bounds(args: ResourceValidationArgs) -> tuple[float | None, float | None]:
    if args.resource_type == EKS_NODE_GROUP:
        scaling = args.props.get("scalingConfig") or {}
        return scaling.get("minSize"), scaling.get("maxSize")
    scaling = args.props.get("autoscaling") or {}
    low = scaling.get("totalMinNodeCount", scaling.get("minNodeCount"))
    high = scaling.get("totalMaxNodeCount", scaling.get("maxNodeCount"))
    return low, high


def validate_autoscaling(args: ResourceValidationArgs, report: Report) -> None:
    if not is_gpu_pool(args):
        return
    limit = int((args.get_config() or {}).get("maxNodes", DEFAULT_MAX_NODES))
    low, high = _bounds(args)
    if low is None or high is None:
        report(f"GPU pool {args.name} does not autoscale: set autoscaling with min 0 and max ≤ {limit}.")
        return
    if low != 0:
        report(f"GPU pool {args.name} keeps {int(low)} node(s) up when idle: set its minimum to 0.")
    if high > limit:
        report(f"GPU pool {args.name} may grow to {int(high)} nodes: keep its maximum ≤ {limit} (policy maxNodes).")


gpu_pool_label_and_taint = ResourceValidationPolicy(
    name="gpu-pool-label-and-taint",
    description="GPU node pools carry the mlenv.io/pool label and the nvidia.com/gpu=present:NoSchedule taint.",
    validate=validate_label_and_taint,
    enforcement_level=EnforcementLevel.MANDATORY,
)

gpu_pool_autoscaling = ResourceValidationPolicy(
    name="gpu-pool-autoscaling",
    description="GPU node pools autoscale from 0 to a bounded maximum.",
    validate=validate_autoscaling,
    enforcement_level=EnforcementLevel.MANDATORY,
    config_schema=PolicyConfigSchema(
        properties={"maxNodes": {"type": "integer", "default": DEFAULT_MAX_NODES, "minimum": 1}}
    ),
)
