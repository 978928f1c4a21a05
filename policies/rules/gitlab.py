"""The team's GitLab: secrets stay masked and protected, nothing is public, tokens expire."""

from __future__ import annotations

from pulumi_policy import EnforcementLevel, ResourceValidationArgs, ResourceValidationPolicy

from mlenv.config import looks_secret

from .common import Report

VARIABLES = {"gitlab:index/groupVariable:GroupVariable", "gitlab:index/projectVariable:ProjectVariable"}
PROJECTS_AND_GROUPS = {"gitlab:index/project:Project", "gitlab:index/group:Group"}
DEPLOY_TOKENS = {"gitlab:index/groupDeployToken:GroupDeployToken", "gitlab:index/projectDeployToken:ProjectDeployToken"}


def validate_secret_variables(args: ResourceValidationArgs, report: Report) -> None:
    if args.resource_type not in VARIABLES:
        return
    key = str(args.props.get("key", ""))
    if not looks_secret(key):
        return
    missing = [flag for flag in ("masked", "protected") if not args.props.get(flag)]
    if missing:
        report(
            f"CI/CD variable {key} looks secret but is not {' and '.join(missing)}: set "
            f"{', '.join(f'{flag}=True' for flag in missing)} so it never shows in job logs or unprotected branches."
        )


def validate_not_public(args: ResourceValidationArgs, report: Report) -> None:
    if args.resource_type in PROJECTS_AND_GROUPS and args.props.get("visibilityLevel", "private") != "private":
        report(
            f"{args.name} has visibility {args.props['visibilityLevel']!r}: ML code and data stay private "
            "(visibility_level='private')."
        )


def validate_token_expiry(args: ResourceValidationArgs, report: Report) -> None:
    if args.resource_type in DEPLOY_TOKENS and not args.props.get("expiresAt"):
        report(f"deploy token {args.name} never expires: set expires_at (mlenv uses deploy_token_days, ≤ 365).")


gitlab_secret_variables = ResourceValidationPolicy(
    name="gitlab-secret-variables",
    description="Variables whose names look secret (TOKEN, KEY, PASSWORD, SECRET) are masked and protected.",
    validate=validate_secret_variables,
    enforcement_level=EnforcementLevel.MANDATORY,
)

gitlab_private = ResourceValidationPolicy(
    name="gitlab-private",
    description="GitLab groups and projects are private.",
    validate=validate_not_public,
    enforcement_level=EnforcementLevel.MANDATORY,
)

gitlab_token_expiry = ResourceValidationPolicy(
    name="gitlab-deploy-token-expiry",
    description="Deploy tokens have an expiry date.",
    validate=validate_token_expiry,
    enforcement_level=EnforcementLevel.MANDATORY,
)
