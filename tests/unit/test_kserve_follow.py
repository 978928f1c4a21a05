"""The cluster's model follower (the kserve role's files/follow.py): what it decides to send.

Its calls to MLflow and the Kubernetes API run against a real cluster only (tests/k8s/test_live_cluster.py);
here the decisions that make it follow an alias, and nothing else, without one.
"""

from __future__ import annotations

import pytest

from tests.conftest import ROLES_DIR, module_from

follow = module_from(ROLES_DIR / "kserve/files/follow.py", "kserve_follow")
SHAPE = {
    "apiVersion": "serving.kserve.io/v1beta1",
    "kind": "InferenceService",
    "metadata": {
        "name": "tickets",
        "namespace": "team",
        "annotations": {"serving.kserve.io/deploymentMode": "Standard"},
    },
    "spec": {"predictor": {"model": {"modelFormat": {"name": "mlflow"}, "runtime": "mlenv-mlflow"}}},
}


def test_proxied_artifacts_are_read_from_the_bucket_behind_them() -> None:
    uri = follow.storage_uri("mlflow-artifacts:/1/models/m-abc/artifacts", "mlflow")
    assert uri == "s3://mlflow/1/models/m-abc/artifacts"
    assert follow.storage_uri("s3://mlflow/2/x/artifacts", "mlflow") == "s3://mlflow/2/x/artifacts"


@pytest.mark.parametrize("outside", ["s3://other/1/m", "gs://mlflow/1/m", "/local/model", "mlflow-artifacts:/"])
def test_models_outside_the_bucket_are_refused_with_where_they_are(outside: str) -> None:
    with pytest.raises(ValueError, match="outside the object store's bucket mlflow"):
        follow.storage_uri(outside, "mlflow")


def test_a_model_without_an_inference_service_gets_one_at_the_aliased_version() -> None:
    desired = follow.wanted(SHAPE, "production", "4", "s3://mlflow/1/m-4")
    assert follow.change(None, desired) == ("create", desired)
    assert desired["spec"]["predictor"]["model"]["storageUri"] == "s3://mlflow/1/m-4"
    assert desired["metadata"]["annotations"] == {
        "serving.kserve.io/deploymentMode": "Standard",
        "mlenv.io/model-version": "4",
        "mlenv.io/model-alias": "production",
    }
    assert "storageUri" not in SHAPE["spec"]["predictor"]["model"], "the rendered shape is left as it was"


def test_it_serving_the_aliased_version_sends_nothing() -> None:
    current = follow.wanted(SHAPE, "production", "4", "s3://mlflow/1/m-4")
    current["status"] = {"url": "http://tickets.team"}
    assert follow.change(current, follow.wanted(SHAPE, "production", "4", "s3://mlflow/1/m-4")) is None


def test_a_moved_alias_patches_only_the_storage_and_the_version() -> None:
    current = follow.wanted(SHAPE, "production", "4", "s3://mlflow/1/m-4")
    # A rollback: production back at version 3.
    action, patch = follow.change(current, follow.wanted(SHAPE, "production", "3", "s3://mlflow/1/m-3"))
    assert action == "patch"
    assert patch == {
        "metadata": {"annotations": {"mlenv.io/model-version": "3", "mlenv.io/model-alias": "production"}},
        "spec": {"predictor": {"model": {"storageUri": "s3://mlflow/1/m-3"}}},
    }


def test_a_hand_edited_storage_uri_is_put_back() -> None:
    current = follow.wanted(SHAPE, "production", "4", "s3://mlflow/1/m-4")
    current["spec"]["predictor"]["model"]["storageUri"] = "s3://mlflow/1/by-hand"
    action, patch = follow.change(current, follow.wanted(SHAPE, "production", "4", "s3://mlflow/1/m-4"))
    assert (action, patch["spec"]["predictor"]["model"]["storageUri"]) == ("patch", "s3://mlflow/1/m-4")
