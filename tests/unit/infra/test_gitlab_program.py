"""pulumi/gitlab under Pulumi's mocks: group layout, variable flags, runners, the committed CI file, and
bad configs stopped before any resource exists."""

from __future__ import annotations

import asyncio
import copy
import re
import tomllib

import pulumi
import pytest
import yaml

from mlenv.config import GitLab
from mlenv.infra.gitlab import Platform, PlatformSecrets, TeamSpace
from tests.conftest import PROJECT_ROOT
from tests.unit.infra.mocks import RecordingMocks, assert_rejected, run_program

PLATFORM = {
    "tracking_uri": "https://mlflow.ml.example.com",
    "s3_endpoint": "https://s3.ml.example.com",
    "label_studio_url": "https://labels.ml.example.com",
}
SECRETS = {"mlflowPassword": "pw", "awsAccessKeyId": "AKIAEXAMPLE", "awsSecretAccessKey": "s3cr3t",
           "labelStudioApiKey": "lstoken"}  # fmt: skip
TOP = {"group_path": "ml-team", "gpu_pool": "t4", "runner_namespace": "ml-team"}
SUB = {
    "group_path": "ml-team",
    "parent_group": "acme/platform",
    "subgroups": ["serving"],
    "projects": ["data", "training", "serving/inference"],
    "variables": [{"key": "HF_TOKEN", "secret_config": "hfToken"}, {"key": "TEAM_NAME", "value": "vision"}],
}
GROUP_VARIABLE = "gitlab:index/groupVariable:GroupVariable"
CONTRACT = {"MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL", "LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY",
            "KUBECONFIG", "MLENV_DATASET_BUCKET"}  # fmt: skip
# Pulumi marks secret values in resource inputs with this signature.
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
SECRET_KEYS = {"MLFLOW_TRACKING_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "LABEL_STUDIO_API_KEY"}


def build(gitlab: dict, mocks: RecordingMocks | None = None, **extra: object) -> RecordingMocks:
    config = {"gitlab": gitlab, "platform": PLATFORM, "clusterStack": "acme/mlenv-cluster/team", **SECRETS, **extra}
    return run_program("gitlab", "mlenv-gitlab", config, mocks)


def variables(mocks: RecordingMocks) -> list[dict]:
    return [resource.inputs for resource in mocks.of_type(GROUP_VARIABLE)]


@pytest.mark.parametrize(("config", "parent"), [(TOP, None), (SUB, 42)], ids=["top-level", "subgroup"])
def test_group_layout_private_projects_and_protected_main(config: dict, parent: int | None) -> None:
    mocks = build(config, hfToken="hf-secret")
    groups = {group.name: group.inputs for group in mocks.of_type("gitlab:index/group:Group")}
    team = groups["ml-team"]
    assert team.get("parentId") == parent
    assert all(group["visibilityLevel"] == "private" for group in groups.values())
    assert sorted(groups) == ["ml-team", *[f"ml-team-{sub}" for sub in config.get("subgroups", [])]]
    projects = {project.inputs["path"]: project.inputs for project in mocks.of_type("gitlab:index/project:Project")}
    assert sorted(projects) == sorted(
        p.rsplit("/", 1)[-1] for p in config.get("projects", ["data", "training", "serving"])
    )
    for name, project in projects.items():
        assert project["visibilityLevel"] == "private", name
        assert project["onlyAllowMergeIfPipelineSucceeds"] is True, name
        assert project["sharedRunnersEnabled"] is False, name
    protections = mocks.of_type("gitlab:index/branchProtection:BranchProtection")
    assert len(protections) == len(projects)
    assert all(p.inputs["branch"] == "main" and p.inputs["pushAccessLevel"] == "no one" for p in protections)
    assert all(p.inputs["allowForcePush"] is False for p in protections)


def test_platform_variables_carry_the_documented_names_and_flags() -> None:
    found = variables(build(TOP))
    assert {variable["key"] for variable in found} == CONTRACT | {"MLENV_NAMESPACE", "MLENV_TRAIN_RUNNER"}
    for variable in found:
        key = variable["key"]
        if key in SECRET_KEYS:
            assert (variable["masked"], variable["protected"], variable["hidden"]) == (True, True, True), key
        elif key == "KUBECONFIG":
            assert variable["variableType"] == "file" and variable["protected"] is True, key
        else:
            assert variable["masked"] is False and variable["variableType"] == "env_var", key
    assert sorted(v["environmentScope"] for v in found if v["key"] == "KUBECONFIG") == ["production", "staging"]
    assert all(v["environmentScope"] == "*" for v in found if v["key"] != "KUBECONFIG")


def secret_value(value: object) -> object:
    """The value inside Pulumi's secret envelope, or None when the value is not a secret."""
    if isinstance(value, dict) and SECRET_SIG in value.values():
        return value["value"]
    return None


def test_extra_variables_take_secrets_from_secret_config() -> None:
    found = {variable["key"]: variable for variable in variables(build(SUB, hfToken="hf-secret"))}
    assert secret_value(found["HF_TOKEN"]["value"]) == "hf-secret" and found["HF_TOKEN"]["masked"] is True
    assert found["TEAM_NAME"]["value"] == "vision" and found["TEAM_NAME"]["masked"] is False


def test_secret_values_stay_secrets_in_the_plan() -> None:
    for variable in variables(build(TOP)):
        wrapped = secret_value(variable["value"]) is not None
        assert wrapped is (variable["key"] in SECRET_KEYS or variable["key"] == "KUBECONFIG"), variable["key"]


def test_gpu_runner_is_tagged_for_the_pool_and_trigger_and_deploy_token_exist() -> None:
    mocks = build(TOP)
    runners = {runner.name: runner.inputs for runner in mocks.of_type("gitlab:index/userRunner:UserRunner")}
    assert runners["ml-team-runner-gpu"]["tagLists"] == ["gpu", "t4"]
    assert runners["ml-team-runner-gpu"]["untagged"] is False
    assert runners["ml-team-runner-cpu"]["tagLists"] == ["cpu"] and runners["ml-team-runner-cpu"]["untagged"] is True
    assert all(runner["runnerType"] == "group_type" and runner["locked"] for runner in runners.values())
    (trigger,) = mocks.of_type("gitlab:index/pipelineTrigger:PipelineTrigger")
    training = next(p for p in mocks.of_type("gitlab:index/project:Project") if p.inputs["path"] == "training")
    # The mocks number GitLab resources by registration order (see mocks.py).
    assert trigger.inputs["project"] == str(101 + mocks.resources.index(training))
    (token,) = mocks.of_type("gitlab:index/groupDeployToken:GroupDeployToken")
    assert token.inputs["scopes"] == ["read_registry"] and re.fullmatch(r"\d{4}-\d{2}-\d{2}", token.inputs["expiresAt"])


def test_the_starter_project_is_committed_as_it_is_in_the_template() -> None:
    mocks = build(TOP)
    files = {
        found.inputs["filePath"]: found.inputs for found in mocks.of_type("gitlab:index/repositoryFile:RepositoryFile")
    }
    template = PROJECT_ROOT / "templates/ml-project"
    expected = {path.relative_to(template).as_posix() for path in template.rglob("*") if path.is_file()
                and "__pycache__" not in path.parts}  # fmt: skip
    assert (
        set(files) == expected and {"train.py", "requirements.txt", ".gitlab-ci.yml", "data/sample.jsonl"} <= expected
    )
    for path, inputs in files.items():
        assert inputs["content"] == (template / path).read_text(), path
        assert inputs["branch"] == "main" and inputs["overwriteOnCreate"] is True
    training = next(p for p in mocks.of_type("gitlab:index/project:Project") if p.inputs["path"] == "training")
    assert {inputs["project"] for inputs in files.values()} == {str(101 + mocks.resources.index(training))}


def test_the_committed_pipeline_uses_only_variables_the_program_or_its_trigger_defines() -> None:
    mocks = build(TOP)
    (ci_file,) = [f for f in mocks.of_type("gitlab:index/repositoryFile:RepositoryFile")
                  if f.inputs["filePath"] == ".gitlab-ci.yml"]  # fmt: skip
    pipeline = yaml.safe_load(ci_file.inputs["content"])
    defined = {variable["key"]: variable["value"] for variable in variables(mocks)}
    assert defined["MLENV_TRAIN_RUNNER"] == "gpu"  # TOP has a GPU pool: training lands on it
    assert pipeline["train"]["tags"] == ["$MLENV_TRAIN_RUNNER"]
    without_gpus = {variable["key"]: variable["value"] for variable in variables(build({**TOP, "gpu_pool": None}))}
    assert without_gpus["MLENV_TRAIN_RUNNER"] == "cpu"
    trigger_variables = {"DATASET_VERSION", "MODEL_NAME", "TRIGGER"}
    used = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", ci_file.inputs["content"]))
    undefined = {name for name in used - set(defined) - set(pipeline["variables"]) - trigger_variables
                 if not name.startswith("CI_")}  # fmt: skip
    assert not undefined, f"the CI file uses variables the program does not define: {undefined}"


def test_runner_configs_and_tokens_are_secrets_and_place_gpu_jobs() -> None:
    pulumi.runtime.set_mocks(RecordingMocks(), project="mlenv-gitlab", stack="test", preview=False)

    @pulumi.runtime.test
    def check() -> object:
        team = TeamSpace(
            "ml-team", GitLab.model_validate(TOP), Platform.model_validate(PLATFORM), PlatformSecrets("p", "a", "s")
        )

        async def verify() -> None:
            assert await team.trigger_token.is_secret()
            assert await team.runner_configs.is_secret()
            configs = await team.runner_configs.future()
            gpu = tomllib.loads(configs["gpu"])["runners"][0]
            assert gpu["kubernetes"]["node_selector"] == {"mlenv.io/pool": "t4"}
            assert gpu["kubernetes"]["node_tolerations"] == {"nvidia.com/gpu=present": "NoSchedule"}
            assert gpu["kubernetes"]["privileged"] is False and gpu["token"] == "glrt-ml-team-runner-gpu"
            cpu = tomllib.loads(configs["cpu"])["runners"][0]
            assert "node_selector" not in cpu["kubernetes"]

        return asyncio.ensure_future(verify())

    check()


def changed(**changes: object) -> dict:
    config = copy.deepcopy(SUB)
    config.update(changes)
    return config


BAD = {
    "invalid group path": (
        changed(group_path="ml team!"),
        "gitlab.group_path: 'ml team!' is not a GitLab group path: letters, digits, _ . -",
    ),
    "duplicate project names": (changed(projects=["data", "serving/data", "training"]), "lists a name twice"),
    "secret variable unmasked": (
        changed(variables=[{"key": "DB_PASSWORD", "secret_config": "db", "masked": False}]),
        "DB_PASSWORD looks secret: it must be masked and protected",
    ),
    "secret variable in plain config": (
        changed(variables=[{"key": "API_TOKEN", "value": "abc"}]),
        "API_TOKEN looks secret: put it in Pulumi secret config",
    ),
    "unknown environment scope": (
        changed(variables=[{"key": "REGION", "value": "eu", "environment_scope": "prod"}]),
        "environment scope 'prod' is not one of `environments` (staging, production) or '*'",
    ),
    "project in an undeclared subgroup": (
        changed(projects=["training", "models/registry"]),
        "is in subgroup 'models', which `subgroups` does not list",
    ),
    "training project missing": (changed(training_project="train"), "`training_project` 'train' is not one of"),
    "deploy token without a bounded expiry": (changed(deploy_token_days=0), "deploy_token_days"),
    "missing secret config value": (
        changed(variables=[{"key": "HF_TOKEN", "secret_config": "hfToken"}]),
        "Missing required configuration variable 'mlenv-gitlab:hfToken'",
    ),
}


@pytest.mark.parametrize("name", BAD)
def test_bad_config_raises_before_any_resource(name: str) -> None:
    assert_rejected(build, *BAD[name])
