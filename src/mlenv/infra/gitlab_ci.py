"""What the GitLab program writes as text: the starter pipeline and the runners' Kubernetes executor config."""

from __future__ import annotations

import json

import yaml

from mlenv.infra.placement import GPU_TAINT_EFFECT, GPU_TAINT_KEY, GPU_TAINT_VALUE, POOL_LABEL


def starter_pipeline(environments: list[str]) -> str:
    """Validate → train on a GPU runner → register → deploy per environment; only platform variables."""
    deploy = {
        f"deploy-{environment}": {
            "stage": "deploy",
            "tags": ["cpu"],
            "image": "bitnami/kubectl:1.33",
            "environment": {"name": environment},
            "rules": [{"if": "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH", "when": "manual"}],
            "script": [
                'kubectl --kubeconfig "$KUBECONFIG" -n "$MLENV_NAMESPACE" apply -f serving/inferenceservice.yaml',
            ],
        }
        for environment in environments
    }
    pipeline = {
        "stages": ["validate", "train", "register", "deploy"],
        "default": {"image": "python:3.11-slim", "tags": ["cpu"]},
        "validate-data": {
            "stage": "validate",
            "script": [
                "pip install boto3",
                'python -c "import boto3, os; '
                "s3 = boto3.client('s3', endpoint_url=os.environ['MLFLOW_S3_ENDPOINT_URL']); "
                "print(s3.list_objects_v2(Bucket=os.environ['MLENV_DATASET_BUCKET'], MaxKeys=5).get('KeyCount'))\"",
            ],
        },
        "train": {
            "stage": "train",
            # The `gpu` runner places the job pod on the GPU pool (node selector + toleration).
            "tags": ["gpu"],
            "image": "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime",
            "script": [
                "pip install -r requirements.txt",
                'python train.py --dataset "s3://$MLENV_DATASET_BUCKET/$DATASET_VERSION"'
                ' --tracking "$MLFLOW_TRACKING_URI"',
            ],
            "variables": {"DATASET_VERSION": "latest"},
        },
        "register": {
            "stage": "register",
            "script": ["pip install mlflow", 'python register.py --tracking "$MLFLOW_TRACKING_URI"'],
            "rules": [{"if": "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"}],
        },
        **deploy,
    }
    header = "# Written by mlenv (pulumi/gitlab). The platform's variables are set on the group.\n"
    return header + yaml.safe_dump(pipeline, sort_keys=False, width=200)


def runner_config(url: str, token: str, namespace: str, pool: str | None) -> str:
    """config.toml for gitlab-runner's Kubernetes executor; the GPU runner pins its pods to the pool."""
    name = f"mlenv-{pool}" if pool else "mlenv-cpu"
    lines = [
        "concurrent = 4",
        "",
        "[[runners]]",
        f"  name = {json.dumps(name)}",
        f"  url = {json.dumps(url)}",
        f"  token = {json.dumps(token)}",
        '  executor = "kubernetes"',
        "  [runners.kubernetes]",
        f"    namespace = {json.dumps(namespace)}",
        "    privileged = false",
        '    cpu_request = "500m"',
        '    memory_request = "1Gi"',
    ]
    if pool:
        lines += [
            '    service_account = "gitlab-runner-gpu"',
            "    [runners.kubernetes.node_selector]",
            f"      {json.dumps(POOL_LABEL)} = {json.dumps(pool)}",
            "    [runners.kubernetes.node_tolerations]",
            f"      {json.dumps(f'{GPU_TAINT_KEY}={GPU_TAINT_VALUE}')} = {json.dumps(GPU_TAINT_EFFECT)}",
        ]
    return "\n".join(lines) + "\n"
