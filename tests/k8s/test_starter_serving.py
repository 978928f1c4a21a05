"""The starter ML project's serving spec, filled in as serving/render.py does, against the pinned KServe CRD."""

from __future__ import annotations

from string import Template

import yaml

from tests.helpers.manifests import validate
from tests.helpers.template_venv import TEMPLATE


def test_the_serving_spec_filled_in_is_a_valid_inference_service() -> None:
    text = Template((TEMPLATE / "serving/inferenceservice.yaml").read_text()).substitute(
        MODEL_NAME="tickets", MODEL_STORAGE_URI="s3://mlflow/1/models/m-0123/artifacts"
    )
    service = yaml.safe_load(text)
    validate(service)  # raises, naming the field, when the pinned KServe CRD disagrees
    assert service["spec"]["predictor"]["model"]["storageUri"] == "s3://mlflow/1/models/m-0123/artifacts"
