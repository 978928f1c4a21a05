"""Prints serving/inferenceservice.yaml for the model version behind an alias (e.g. production).

python serving/render.py MODEL_NAME ALIAS > inferenceservice.yaml

MLflow serves its artifacts from the object store's bucket (MLENV_MODEL_BUCKET, mlflow by
default): its mlflow-artifacts:/ URIs are the s3:// objects KServe's storage initializer reads.
"""

import os
import sys
from pathlib import Path
from string import Template

from mlflow import MlflowClient

SPEC = Path(__file__).with_name("inferenceservice.yaml")


def storage_uri(artifact_uri: str, bucket: str) -> str:
    uri = artifact_uri.replace("mlflow-artifacts:/", f"s3://{bucket}/", 1)
    if not uri.startswith(f"s3://{bucket}/"):
        raise SystemExit(f"model artifacts at {artifact_uri} are outside the object store's bucket {bucket}")
    return uri


def render(name: str, alias: str, version: str, artifact_uri: str, bucket: str) -> str:
    values = {"MODEL_NAME": name, "MODEL_ALIAS": alias, "MODEL_VERSION": version,
              "MODEL_STORAGE_URI": storage_uri(artifact_uri, bucket)}  # fmt: skip
    return Template(SPEC.read_text()).substitute(values)


def main() -> int:
    name, alias = sys.argv[1], sys.argv[2]
    client = MlflowClient()
    version = client.get_model_version_by_alias(name, alias).version
    artifacts = client.get_model_version_download_uri(name, version)
    print(render(name, alias, str(version), artifacts, os.environ.get("MLENV_MODEL_BUCKET", "mlflow")), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
