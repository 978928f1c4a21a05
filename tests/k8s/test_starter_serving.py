"""The starter ML project's serving spec, filled in as serving/render.py does, against the pinned KServe
CRD, and the same InferenceService the cluster's follower (the kserve role's) would make."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import ROLES_DIR, module_from
from tests.helpers.manifests import validate
from tests.helpers.template_venv import TEMPLATE

render = module_from(TEMPLATE / "serving/render.py", "starter_render")
follow = module_from(ROLES_DIR / "kserve/files/follow.py", "kserve_follow")


def rendered() -> dict:
    artifacts = "mlflow-artifacts:/1/models/m-0123/artifacts"
    return yaml.safe_load(render.render("tickets", "production", "7", artifacts, "mlflow"))


def test_the_serving_spec_filled_in_is_a_valid_inference_service_reading_the_bucket() -> None:
    service = rendered()
    validate(service)  # raises, naming the field, when the pinned KServe CRD disagrees
    predictor = service["spec"]["predictor"]
    assert predictor["model"]["storageUri"] == "s3://mlflow/1/models/m-0123/artifacts"
    # The account the kserve role gives the object store's key pair.
    assert predictor["serviceAccountName"] == "mlenv-kserve-s3"


def test_the_follower_finds_what_the_pipeline_deployed_at_the_same_version_and_sends_nothing() -> None:
    service = rendered()
    desired = follow.wanted(service, "production", "7", "s3://mlflow/1/models/m-0123/artifacts")
    assert follow.change(service, desired) is None
    moved = follow.wanted(service, "production", "6", "s3://mlflow/1/models/m-0099/artifacts")
    assert follow.change(service, moved)[0] == "patch"


def test_a_model_outside_the_bucket_is_refused() -> None:
    with pytest.raises(SystemExit, match="outside the object store's bucket mlflow"):
        render.storage_uri("s3://elsewhere/1/m", "mlflow")
