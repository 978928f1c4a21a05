"""The commented mlenv.yaml that `mlenv init` writes; every value shown is the default."""

from __future__ import annotations

LOCAL = """\
# mlenv.yaml: one ML environment. `mlenv plan` shows what a change would do, `mlenv up` applies it.
# Names: lower-case letters, digits and dashes, starting with a letter.

environment: {environment}    # names the state folder (~/.local/state/mlenv/<environment>)
profile: {profile}            # local: one Linux host, no cloud account | cloud: GPU cluster + GitLab

services:
  label_studio: true      # labelling; MLflow, the object store and PostgreSQL always run

# Versions are pinned in the roles' defaults; set one here only to move off the pin.
versions: {{}}
#   mlflow: 3.17.2
#   label_studio: 1.23.2
#   seaweedfs: "4.48"

object_store:
  backend: seaweedfs      # seaweedfs | minio (binary from a URL you mirror) | external
  # endpoint: https://s3.example.com   # backend external only
  buckets: [mlflow, datasets, label-studio, argo]
  versioned_buckets: [datasets]

tls:
  domain: mlenv.localhost # services answer at mlflow.<domain>, labels.<domain>, s3.<domain>
  https_port: 8443        # where the local container's proxy is published on 127.0.0.1
  # certificate: /etc/ssl/mlenv/wildcard.crt   # your certificate for *.<domain>, with its key;
  # key: /etc/ssl/mlenv/wildcard.key           # left out, mlenv generates a CA and trusts nothing else

local:
  target: container       # container: a systemd container on this machine | this-host (PID 1 is systemd)
  # host_name: mlenv-{environment}   # the default: each environment has its own host

# The ML loop: Label Studio projects (by title) whose annotations train a model, served as it passes the gate.
loop:
  projects: []
  #  - title: Support tickets   # the project's title in Label Studio
  #    dataset: tickets         # versions go to s3://datasets/tickets/versions/<id>/
  #    model: tickets           # the registered model; the model server serves its production version
  #    every: 20                # new annotation events that make a version and a run,
  #    after_seconds: 600       # or this long after the first waiting one
  #    assist: true             # Label Studio shows the production model's suggestions (the service is its ML
  #    control_percent: 50      # backend), except on this share of the tasks: the control group
  # runner: systemd      # where runs train: systemd (a unit on the service host) | gitlab (the training project's
  #                      # pipeline, the default on profile cloud with a gitlab section)
  holdout_percent: 20     # tasks held out for the gate, the same in every version
  margin: 0.0             # how much better than production a new model must be
  quiet_seconds: 5        # a due snapshot waits this long for the rest of a burst
"""

CLOUD = """
cloud:
  # Your inventory of the service hosts (cp -r inventories/sample inventories/{environment}); relative to this file.
  inventory: inventories/{environment}
  # pulumi:
  #   backend_url: s3://my-bucket/pulumi   # where stack state lives; left out: PULUMI_BACKEND_URL, else the state dir
  #   organization: my-org                 # Pulumi Cloud only
  #   secrets_provider: awskms://alias/mlenv  # shared bucket: a KMS key, or PULUMI_CONFIG_PASSPHRASE_FILE
  cluster:
    provider: gke         # gke | eks
    region: europe-west4
    project: my-gcp-project   # GCP project id (gke)
    gpu_pools:            # each pool: labeled mlenv.io/pool=<name>, tainted nvidia.com/gpu=present:NoSchedule
      - name: t4
        machine_type: n1-standard-8
        accelerator: nvidia-tesla-t4
        accelerator_count: 1
        min_nodes: 0      # scale to zero when idle
        max_nodes: 4
        spot: true
  gitlab:
    url: https://gitlab.com
    group_path: ml-team
    # parent_group: my-company/platform   # create the team under an existing group
    projects: [data, training, serving]
"""


def starter(profile: str, environment: str) -> str:
    text = LOCAL.format(profile=profile, environment=environment)
    return text + CLOUD.format(environment=environment) if profile == "cloud" else text
