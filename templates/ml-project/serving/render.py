"""Prints serving/inferenceservice.yaml for the model version behind an alias (e.g. production).

python serving/render.py MODEL_NAME ALIAS > inferenceservice.yaml
"""

import sys
from pathlib import Path
from string import Template

from mlflow import MlflowClient

SPEC = Path(__file__).with_name("inferenceservice.yaml")


def main() -> int:
    name, alias = sys.argv[1], sys.argv[2]
    client = MlflowClient()
    version = client.get_model_version_by_alias(name, alias)
    storage = client.get_model_version_download_uri(name, version.version)
    print(Template(SPEC.read_text()).substitute(MODEL_NAME=name, MODEL_STORAGE_URI=storage), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
