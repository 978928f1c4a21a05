"""mlenv.yaml: the embedded default, the starter files, and bad configurations rejected with the key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlenv.config import ConfigError, MlenvConfig, load
from mlenv.starter import starter

POOL = "{name: t4, machine_type: n1-standard-8, accelerator: nvidia-tesla-t4, max_nodes: 2}"
CLOUD = (
    "profile: cloud\ncloud:\n  inventory: inventories/team\n"
    "  cluster:\n    provider: gke\n    region: europe-west4\n    project: p\n"
    f"    gpu_pools: [{POOL}]\n"
)

BAD = {
    "loop project with a dataset name that is not a name": (
        "loop:\n  projects: [{title: T, dataset: Tickets_1, model: tickets}]\n",
        "loop.projects.0.dataset: 'Tickets_1' is not lower-case letters, digits and dashes, starting with a letter",
    ),
    "loop project title twice": (
        "loop:\n  projects: [{title: T, dataset: a, model: a}, {title: T, dataset: b, model: b}]\n",
        "loop: `projects` lists the title 'T' twice: one project trains one model",
    ),
    "loop debounce of zero": (
        "loop:\n  projects: [{title: T, dataset: a, model: a, every: 0}]\n",
        "loop.projects.0.every: Input should be greater than or equal to 1",
    ),
    "loop runner gitlab without GitLab": (
        "loop:\n  runner: gitlab\n",
        "(top level): `loop.runner: gitlab` starts the training project's pipeline: it needs `cloud.gitlab`",
    ),
    "loop runner argo without a cluster": (
        "loop:\n  runner: argo\n",
        "(top level): `loop.runner: argo` submits Workflows on the cluster: it needs profile cloud",
    ),
    "loop runner that does not exist": (
        "loop:\n  runner: cron\n",
        "loop.runner: Input should be 'systemd', 'gitlab' or 'argo'",
    ),
    "loop projects without Label Studio": (
        "services:\n  label_studio: false\nloop:\n  projects: [{title: T, dataset: a, model: a}]\n",
        "(top level): `loop.projects` train from Label Studio: keep `services.label_studio: true`",
    ),
    "unknown top-level key": ("enviroment: x\n", "enviroment: unknown key (did you mean `environment`?)"),
    "unknown nested key": (
        "object_store:\n  backnd: minio\n",
        "object_store.backnd: unknown key (did you mean `backend`?)",
    ),
    "unknown backend": (
        "object_store:\n  backend: ceph\n",
        "object_store.backend: Input should be 'seaweedfs', 'minio' or 'external'",
    ),
    "external without endpoint": (
        "object_store:\n  backend: external\n",
        "object_store: backend external needs `endpoint` (the URL of your S3 service)",
    ),
    "endpoint for an installed backend": (
        "object_store:\n  endpoint: https://s3.example.com\n",
        "object_store: `endpoint` is only for backend external; backend seaweedfs is installed here",
    ),
    "bucket name S3 rejects": (
        "object_store:\n  buckets: [mlflow, datasets, label-studio, Bad_Bucket]\n",
        "object_store.buckets.3: 'Bad_Bucket' is not an S3 bucket name: 3-63 of a-z, 0-9, dots, dashes",
    ),
    # The inputs a new user tried that passed this check and were refused only after hosts changed.
    "bucket name with two dots": (
        "object_store:\n  buckets: [mlflow, datasets, label-studio, ml..data]\n",
        "object_store.buckets.3: 'ml..data' is not an S3 bucket name: 3-63 of a-z, 0-9, dots, dashes, from and to "
        "a letter or digit, no '..', not an IP address",
    ),
    "MLflow version without its patch number": (
        'versions:\n  mlflow: "3.17"\n',
        "versions.mlflow: '3.17' is not an MLflow release number such as 3.17.2",
    ),
    "Label Studio pre-release": (
        "versions:\n  label_studio: 1.24.0rc1\n",
        "versions.label_studio: '1.24.0rc1' is not a Label Studio release number such as 1.23.2 (no pre-releases)",
    ),
    "SeaweedFS version with no pinned hashes": (
        'versions:\n  seaweedfs: "4.49"\n',
        "(top level): versions.seaweedfs 4.49: mlenv pins the wheel hashes of 4.48 only; give "
        "`object_store.seaweedfs_wheel_sha256`",
    ),
    "MinIO without a checksum": (
        "object_store:\n  backend: minio\n",
        "object_store: backend minio needs `minio_url` and `minio_sha256`",
    ),
    "external endpoint with a path": (
        "object_store:\n  backend: external\n  endpoint: https://s3.example.com/ml\n",
        "object_store.endpoint: 'https://s3.example.com/ml' is not an http(s)://host[:port] URL with no path",
    ),
    "versioned bucket not created": (
        "object_store:\n  versioned_buckets: [models]\n",
        "object_store: `versioned_buckets` names models, not in `buckets`",
    ),
    "privileged port": ("tls:\n  https_port: 443\n", "tls.https_port: Input should be greater than or equal to 1024"),
    "port not a number": (
        "tls:\n  https_port: high\n",
        "tls.https_port: Input should be a valid integer, unable to parse string as an integer (write a whole number)",
    ),
    "certificate without key": (
        "tls:\n  certificate: /etc/hostname\n",
        "tls: give both `certificate` and `key`, or neither (a CA is generated then)",
    ),
    "version that is not a version": (
        "versions:\n  mlflow: latest\n",
        "versions.mlflow: 'latest' is not an MLflow release number such as 3.17.2",
    ),
    "environment name": (
        "environment: Team_A\n",
        "environment: 'Team_A' is not lower-case letters, digits and dashes, starting with a letter (≤ 31)",
    ),
    "cloud profile without cloud": (
        "profile: cloud\n",
        "(top level): profile cloud needs a `cloud:` section (cluster, gitlab)",
    ),
    "cloud section on local": (
        CLOUD.replace("profile: cloud\n", ""),
        "(top level): `cloud:` is only read with profile cloud; set `profile: cloud` or remove it",
    ),
    "pool max below min": (
        CLOUD.replace("max_nodes: 2", "min_nodes: 3, max_nodes: 2"),
        "cloud.cluster.gpu_pools.0: max_nodes (2) is below min_nodes (3)",
    ),
    "gke without project": (
        CLOUD.replace("    project: p\n", ""),
        "cloud.cluster: provider gke needs `project` (the GCP project id)",
    ),
    "no GPU pool": (
        CLOUD.replace(f"[{POOL}]", "[]"),
        "cloud.cluster.gpu_pools: List should have at least 1 item after validation, not 0",
    ),
    "https_port on this-host": (
        "local:\n  target: this-host\ntls:\n  https_port: 9443\n",
        "(top level): `tls.https_port` is for the container target; on this-host nginx listens on 443",
    ),
    "label studio without its bucket": (
        "object_store:\n  buckets: [mlflow, datasets]\n",
        "(top level): Label Studio needs the bucket 'label-studio' in `object_store.buckets`",
    ),
    "cloud without an inventory": (
        CLOUD.replace("  inventory: inventories/team\n", ""),
        "cloud.inventory: Field required (add it (mlenv init writes a commented example))",
    ),
    "GitLab runner on an unknown pool": (
        CLOUD + "  gitlab: {group_path: ml-team, gpu_pool: a100}\n",
        "cloud: gitlab.gpu_pool 'a100' is not one of cluster.gpu_pools (t4)",
    ),
    "Pulumi backend that is not a URL": (
        CLOUD + "  pulumi: {backend_url: /var/pulumi}\n",
        "cloud.pulumi.backend_url: '/var/pulumi' is not a Pulumi backend: file://, s3://, gs://, azblob://, https://",
    ),
    "not a mapping": ("- a\n", "the top level must be a mapping of keys (environment:, profile:, …)"),
    "broken YAML": (
        "tls: [\n",
        "line 2, column 1: not valid YAML (expected the node content, but found '<stream end>')",
    ),
}


@pytest.mark.parametrize("name", BAD)
def test_bad_config_is_rejected_with_its_key_path(tmp_path: Path, name: str) -> None:
    text, expected = BAD[name]
    path = tmp_path / "mlenv.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load(path)
    # The whole message, or its start where it goes on to say more.
    assert any(problem.startswith(expected) for problem in raised.value.problems), raised.value.problems


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "mlenv.yaml"
    path.write_text("environment: X\nversions:\n  mlflow: latest\n")
    with pytest.raises(ConfigError) as raised:
        load(path)
    assert [problem.split(":")[0] for problem in raised.value.problems] == ["environment", "versions.mlflow"]


def test_no_file_means_the_embedded_local_default() -> None:
    config = load(None)
    assert (config.profile, config.local.target, config.object_store.backend) == ("local", "container", "seaweedfs")
    assert config.ansible_vars()["mlenv_services"] == ["mlflow", "label_studio"]
    # Versions stay with the roles' pins unless the file moves them.
    assert "mlflow_version" not in config.ansible_vars()


@pytest.mark.parametrize("profile", ["local", "cloud"])
def test_starter_files_are_valid_and_match_the_defaults(tmp_path: Path, profile: str) -> None:
    path = tmp_path / "mlenv.yaml"
    path.write_text(starter(profile, "team-a"))
    config = load(path)
    assert config.profile == profile and config.environment == "team-a"
    if profile == "local":
        assert config.model_copy(update={"environment": "local"}) == MlenvConfig()
    else:
        assert config.cloud is not None and config.cloud.cluster.gpu_pools[0].min_nodes == 0


def test_choices_reach_the_ansible_variables(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("x")
    key.write_text("x")
    config = MlenvConfig.model_validate(
        {
            "services": {"label_studio": False},
            "versions": {"mlflow": "3.17.1"},
            "object_store": {
                "backend": "external",
                "endpoint": "https://s3.example.com",
                "buckets": ["mlflow", "datasets"],
            },
            "tls": {"domain": "ml.example.com", "certificate": str(cert), "key": str(key)},
        }
    )
    found = config.ansible_vars()
    assert found["mlenv_services"] == ["mlflow"]
    assert found["mlflow_version"] == "3.17.1"
    assert found["object_store_external_endpoint"] == "https://s3.example.com"
    assert (found["proxy_tls_mode"], found["proxy_tls_cert_file"]) == ("provided", str(cert))
    assert found["mlenv_domain"] == "ml.example.com"


def test_the_cloud_inventory_is_read_from_the_config_files_folder(tmp_path: Path) -> None:
    folder = tmp_path / "team"
    folder.mkdir()
    (folder / "mlenv.yaml").write_text(CLOUD)
    config = load(folder / "mlenv.yaml")
    assert config.cloud is not None and config.cloud.inventory == folder / "inventories/team"
    absolute = CLOUD.replace("inventories/team", "/srv/inventory")
    (folder / "mlenv.yaml").write_text(absolute)
    assert load(folder / "mlenv.yaml").cloud.inventory == Path("/srv/inventory")  # type: ignore[union-attr]


def test_loop_projects_reach_the_trigger_service_and_the_model_server() -> None:
    config = MlenvConfig.model_validate(
        {
            "loop": {
                "projects": [
                    {"title": "Support tickets", "dataset": "tickets", "model": "tickets", "every": 5},
                    {"title": "Tickets, one label", "dataset": "tickets-one", "model": "tickets"},
                ],
                "margin": 0.02,
            }
        }
    )
    found = config.ansible_vars()
    assert found["ml_loop_projects"][0] == {
        "title": "Support tickets", "dataset": "tickets", "model": "tickets", "every": 5, "after_seconds": 600,
        "assist": True, "control_percent": 50, "retrain_every_hours": 0, "retrain_below": None, "live_window": 50,
    }  # fmt: skip
    assert found["ml_loop_margin"] == 0.02 and found["ml_loop_holdout_percent"] == 20
    # One model trained from two projects is served once, following production.
    assert found["model_server_models"] == [{"name": "tickets", "alias": "production"}]
    assert MlenvConfig().ansible_vars()["model_server_models"] == []
    assert MlenvConfig().ansible_vars()["ml_loop_runner"] == "systemd"
