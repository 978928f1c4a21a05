"""The profiles behind one interface (profiles/base.py): the local container, this host, the cloud."""

from __future__ import annotations

from mlenv.profiles.base import Profile, Run


def for_run(run: Run) -> Profile:
    """The profile and target mlenv.yaml names."""
    if run.config.profile == "cloud":
        from mlenv.profiles.cloud import Cloud

        return Cloud(run)
    from mlenv.profiles.local import LocalContainer, ThisHost

    return ThisHost(run) if run.config.local.target == "this-host" else LocalContainer(run)
