"""The team's GitLab space: reads the stack's config, builds the TeamSpace, exports its outputs."""

import pulumi

from mlenv.config import GitLab, validate_section
from mlenv.infra.gitlab import Platform, PlatformSecrets, TeamSpace

config = pulumi.Config()
# Validated before any resource exists: a bad path, project list, scope or unmasked secret stops here.
spec = validate_section(GitLab, config.require_object("gitlab"), "gitlab")
platform = validate_section(Platform, config.require_object("platform"), "platform")
secrets = PlatformSecrets(
    mlflow_password=config.require_secret("mlflowPassword"),
    aws_access_key_id=config.require_secret("awsAccessKeyId"),
    aws_secret_access_key=config.require_secret("awsSecretAccessKey"),
    label_studio_api_key=config.get_secret("labelStudioApiKey") if config.get("labelStudioApiKey") else None,
    extra={v.secret_config: config.require_secret(v.secret_config) for v in spec.variables if v.secret_config},
)
# The cluster's kubeconfig: given as secret config (mlenv up passes it on), or read from the
# cluster program's stack. Read last: a StackReference is a resource, and nothing is registered
# before the config is whole.
cluster_stack = config.get("clusterStack")
if config.get("kubeconfig"):
    secrets.kubeconfig = config.require_secret("kubeconfig")
elif cluster_stack:
    secrets.kubeconfig = pulumi.StackReference(cluster_stack).get_output("kubeconfig")
team = TeamSpace(spec.group_path, spec, platform, secrets)

pulumi.export("group_id", team.group.id)
pulumi.export("group_path", team.group.full_path)
pulumi.export("projects", {key: project.path_with_namespace for key, project in team.projects.items()})
pulumi.export("trigger_token", team.trigger_token)
pulumi.export("deploy_token", pulumi.Output.secret(team.deploy_token.token))
pulumi.export("runner_configs", team.runner_configs)
