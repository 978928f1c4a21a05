"""The inventories parse; the boilerplate play stops a port clash, or an inventory that disagrees
with mlenv.yaml, before any host is touched."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mlenv.config import MlenvConfig
from mlenv.settings import owned_settings, write_layer
from tests.conftest import PROJECT_ROOT

LOCAL = PROJECT_ROOT / "inventories/local/hosts.yml"


def settings_layer(state: Path, config: MlenvConfig | None = None, port: int = 8443) -> Path:
    """The layer `mlenv up` writes for a configuration (default: the embedded local profile)."""
    settings = owned_settings(config or MlenvConfig(), state, public_https_port=port, extra=None)
    return write_layer(state, settings)


@pytest.mark.parametrize("inventory", ["local", "sample"])
def test_inventory_lists_a_host_in_every_service_group(inventory, tool_env):
    result = subprocess.run(
        ["ansible-inventory", "-i", str(PROJECT_ROOT / f"inventories/{inventory}/hosts.yml"), "--list"],
        env=tool_env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    groups = json.loads(result.stdout)
    for group in ("db_hosts", "object_store_hosts", "mlflow_hosts", "label_studio_hosts", "proxy_hosts"):
        assert groups[group]["hosts"], f"{inventory}: {group} is empty"


def boilerplate(tool_env, layer: Path, *extra: str, inventory: str = "local") -> subprocess.CompletedProcess[str]:
    # As mlenv runs Ansible: the state folder is the layer's.
    env = {**tool_env, "MLENV_STATE_DIR": str(layer.parent)}
    return subprocess.run(
        ["ansible-playbook", "-i", str(layer), "-i", str(PROJECT_ROOT / f"inventories/{inventory}/hosts.yml"),
         "--check", *extra, "-e", "ansible_python_interpreter={{ ansible_playbook_python }}",
         str(PROJECT_ROOT / "ansible/playbooks/boilerplate.yml")],
        env=env, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip


def test_the_local_inventory_passes_the_boilerplate_checks(tool_env, tmp_path):
    result = boilerplate(tool_env, settings_layer(tmp_path))
    assert result.returncode == 0, result.stdout[-2000:]


def test_the_local_inventory_leaves_what_mlenv_yaml_owns_to_the_layer(tool_env, tmp_path):
    """One source: a domain or bucket list in mlenv.yaml reaches the hosts, with nothing to disagree."""
    config = MlenvConfig.model_validate(
        {"environment": "team-b", "tls": {"domain": "ml.team-b.test"}, "services": {"label_studio": False}}
    )
    layer = settings_layer(tmp_path, config, port=9443)
    result = subprocess.run(
        ["ansible-inventory", "-i", str(layer), "-i", str(PROJECT_ROOT / "inventories/local/hosts.yml"),
         "--host", "mlenv-local"],
        env=tool_env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    seen = json.loads(result.stdout)
    assert seen["mlenv_domain"] == "ml.team-b.test" and seen["mlenv_environment"] == "team-b"
    assert seen["mlenv_services"] == ["mlflow"] and seen["mlenv_public_https_port"] == 9443
    assert seen["mlenv_secrets_dir"] == str(tmp_path / "secrets")
    assert boilerplate(tool_env, layer).returncode == 0


def test_an_inventory_that_disagrees_with_mlenv_yaml_stops_naming_both(tool_env, tmp_path):
    """The sample inventory sets mlenv_domain ml.example.com; mlenv.yaml says another domain."""
    config = MlenvConfig.model_validate({"environment": "ml-team", "tls": {"domain": "ml.other.test"}})
    result = boilerplate(tool_env, settings_layer(tmp_path, config, port=443), inventory="sample")
    assert result.returncode != 0
    message = " ".join(result.stdout.split())
    assert (
        "mlenv_domain: mlenv.yaml (tls.domain) sets 'ml.other.test', but the inventory sets 'ml.example.com' "
        "for db1.ml.example.internal"
    ) in message, result.stdout[-3000:]
    assert "changed=0" in result.stdout
    agreeing = MlenvConfig.model_validate({"environment": "ml-team", "tls": {"domain": "ml.example.com"}})
    result = boilerplate(tool_env, settings_layer(tmp_path, agreeing, port=443), inventory="sample")
    assert "Check that the inventory agrees with mlenv.yaml" in result.stdout
    assert "mlenv.yaml (" not in result.stdout, result.stdout[-3000:]


def test_a_port_clash_between_two_services_stops_the_run(tool_env, tmp_path):
    result = boilerplate(tool_env, settings_layer(tmp_path), "-e", "mlflow_port=8080")
    assert result.returncode != 0
    message = " ".join(result.stdout.split())
    assert "Port clash: mlenv-local: label_studio_port and mlflow_port are both 8080" in message, result.stdout[-2000:]
    assert "changed=0" in result.stdout


LATE_INPUTS = {
    # A rule of the proxy's preflight (the last layer).
    "proxy_tls_mode=provided proxy_tls_cert_file=/etc/hostname": "proxy_tls_mode=provided needs both",
    # Types and choices the argument specs refuse, of later layers than the database's.
    "mlflow_workers=many": "argument 'mlflow_workers' is of type str and we were unable to convert to int",
    "mlflow_default_permission=ALL": "value of mlflow_default_permission must be one of: READ, EDIT, MANAGE",
}


@pytest.mark.parametrize("given", LATE_INPUTS)
def test_a_bad_input_of_a_later_role_stops_before_the_first_role_runs(tool_env, tmp_path, given):
    """Every role's argument specs and preflight run in site.yml's first plays, for every host, on a
    new environment (no secret generated yet): a wrong setting for a later layer stops the run before
    the database layer starts. Check mode, on this machine."""
    extra = [arg for pair in given.split() for arg in ("-e", pair)]
    result = subprocess.run(
        ["ansible-playbook", "-i", str(settings_layer(tmp_path)), "-i", str(LOCAL), "--check",
         "-e", "ansible_connection=local", "-e", "ansible_python_interpreter={{ ansible_playbook_python }}",
         *extra, str(PROJECT_ROOT / "ansible/playbooks/site.yml")],
        env={**tool_env, "MLENV_STATE_DIR": str(tmp_path)}, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert result.returncode != 0
    message = " ".join(result.stdout.split())
    assert LATE_INPUTS[given] in message, result.stdout[-3000:]
    assert "PLAY [Check every role's inputs]" in result.stdout
    assert "PLAY [Long installs" not in result.stdout and "PLAY [Databases]" not in result.stdout
    assert "changed=0" in result.stdout


def rendered(tool_env, layer: Path, expression: str, *, inventory: str = "local") -> dict:
    """What a Jinja expression gives for each host of the inventory, as a play would see it."""
    hosts = PROJECT_ROOT / f"inventories/{inventory}/hosts.yml"
    env = {**tool_env, "MLENV_STATE_DIR": str(layer.parent), "ANSIBLE_LOAD_CALLBACK_PLUGINS": "true",
           "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}  # fmt: skip
    result = subprocess.run(
        ["ansible", "ml_hosts", "-i", str(layer), "-i", str(hosts), "-m", "ansible.builtin.debug",
         "-a", f"msg={{{{ {expression} }}}}"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    answers = json.loads(result.stdout)["plays"][0]["tasks"][0]["hosts"]
    return {host: answer["msg"] for host, answer in answers.items()}


# Each host answers what its groups set (none where it is not in the group).
ADDRESSES = (
    "[mlenv_object_store_endpoint, object_store_listen_address | default(none), object_store_port | default(0) | int,"
    " ml_loop_listen_address | default(none), ml_loop_port | default(0) | int,"
    " label_studio_ssrf_allowed_urls | default(none),"
    " proxy_sites | default([]) | selectattr('name', 'in', ['s3', 'loop']) | map(attribute='upstream') | list]"
)


def test_label_studio_calls_services_on_addresses_of_their_own(tool_env, tmp_path):
    """Its SSRF guard lets addresses through, not ports: on one host, S3 and the trigger service each
    have a loopback address that nothing else uses."""
    (seen,) = rendered(tool_env, settings_layer(tmp_path), ADDRESSES).values()
    assert seen == [
        "http://127.0.0.2:8333", "127.0.0.2", 8333, "127.0.0.3", 8095, ["http://127.0.0.3:8095"],
        ["http://127.0.0.2:8333", "http://127.0.0.3:8095"],
    ]  # fmt: skip
    sample = rendered(
        tool_env,
        settings_layer(
            tmp_path,
            MlenvConfig.model_validate({"environment": "ml-team", "tls": {"domain": "ml.example.com"}}),
            port=443,
        ),
        ADDRESSES,
        inventory="sample",
    )
    assert sample["apps1.ml.example.internal"][3:6] == ["127.0.0.3", 8095, ["http://127.0.0.3:8095"]]
    assert sample["s3-1.ml.example.internal"][:2] == ["https://s3-1.ml.example.internal:8333", "10.0.1.11"]


def test_an_external_object_store_is_where_every_service_reaches_s3(tool_env, tmp_path):
    config = MlenvConfig.model_validate(
        {"object_store": {"backend": "external", "endpoint": "https://s3.storage.example.com"}}
    )
    (seen,) = rendered(tool_env, settings_layer(tmp_path, config), ADDRESSES).values()
    assert seen[0] == "https://s3.storage.example.com"
    assert seen[-1] == ["http://127.0.0.3:8095"]  # users reach that store at its own address, not the proxy
