from __future__ import annotations

import click

from mlenv.app import Application


@click.command()
@click.pass_obj
def plan(app: Application) -> None:
    """What `mlenv up` would change (Ansible check mode; Pulumi preview for the cloud profile)."""
    from mlenv.orchestrate import connection_for, converge, local_host, local_inventory

    config = app.config
    app.info(f"environment {config.environment}, profile {config.profile}: configuration valid")
    if config.profile == "cloud":
        plan_cloud(app)
        return
    host = local_host(app)
    state = host.state() if config.local.target == "container" else "running"
    if state != "running":
        describe_new_environment(app, host.name, host.https_port, create=state == "missing")
        return
    with app.locked("plan"):
        result = converge(app, local_inventory(app, connection_for(app, host)), check=True)
    if not result.ok:
        app.abort(f"the check failed ({result.failed} failed tasks); full log: {result.log}")
    if result.changed:
        app.info(f"{result.changed} change(s) would be made; full diff: {result.log}")
    else:
        app.success("nothing would change")


def describe_new_environment(app: Application, host: str, port: int, *, create: bool) -> None:
    """What the first `mlenv up` makes, from mlenv.yaml alone: check mode needs a host to look at."""
    from mlenv.outputs import TITLES

    config = app.config
    domain, services = config.tls.domain, ["mlflow", "object_store"]
    if config.services.label_studio:
        services.append("label_studio")
    names = {"mlflow": "mlflow", "object_store": "s3", "label_studio": "labels"}
    if create:
        app.info(f"would create the local host '{host}' (systemd container, HTTPS published on 127.0.0.1:{port})")
    else:
        app.info(f"would start the local host '{host}', then converge it")
    app.info(
        f"would install PostgreSQL, the object store ({config.object_store.backend}) and the TLS proxy, and serve:"
    )
    for service in services:
        app.info(f"  {TITLES[service]:<16} https://{names[service]}.{domain}:{port}")
    buckets = ", ".join(config.object_store.buckets)
    app.info(f"would create the buckets {buckets} and generate every secret in {app.state / 'secrets'}")


def plan_cloud(app: Application) -> None:
    """Pulumi previews (with the policy pack) of the programs whose inputs exist; the services'
    check mode needs the cluster, so it waits for the first `mlenv up`."""
    import shutil

    from mlenv import cloud

    if shutil.which("pulumi") is None:
        app.abort("Pulumi preview needs the `pulumi` CLI: curl -fsSL https://get.pulumi.com | sh")
    with app.locked("plan"):
        cloud.preview(app)
