"""Which generated secrets `mlenv rotate` renews, and the files that make a rotation resumable.

Every secret is a 0600 file in the state's `secrets/` folder that the roles read, or generate
when it is missing. Rotating one sets the file aside as `<file>.previous` and converges: the
roles generate the new value and hand it to every consumer (PostgreSQL's role, SeaweedFS's
identities, MLflow's users through its API signed in with the previous admin password where
that one changes, Label Studio's accounts and storage connections, the trigger service's webhooks
on Label Studio, the proxy's certificate, the services' environment files). The
`.previous` files are removed once the converge and the health checks passed; while any is
left a rotation is under way, and the next `mlenv rotate` finishes it instead of starting
another.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from mlenv.errors import UserError

PREVIOUS = ".previous"


@dataclass(frozen=True)
class Kind:
    """Secrets rotated together by name (`mlenv rotate postgresql`)."""

    name: str
    patterns: tuple[str, ...]  # relative to secrets/
    what: str


KINDS = (
    Kind("postgresql", ("postgresql/*",), "the services' database passwords"),
    Kind("object_store", ("object_store/*.access_key", "object_store/*.secret_key"), "every S3 identity's keys"),
    Kind(
        "mlflow",
        (
            "mlflow/admin_password",
            "mlflow/users/*",
            "model_server/mlflow_password",
            "ml_loop/train_mlflow_password",
            "mlflow/flask_secret_key",
        ),
        "the MLflow admin's and users' passwords, and the key that signs its sessions",
    ),
    Kind(
        "label_studio",
        ("label_studio/admin_password", "label_studio/api_token", "label_studio/users/*"),
        "the Label Studio administrator's and users' passwords and API tokens",
    ),
    Kind(
        "ml_loop",
        ("ml_loop/webhook_secret", "ml_loop/api_token", "ml_loop/prediction_log_token"),
        "the loop's webhook secret (Label Studio's webhooks and ML backend) and its API tokens",
    ),
    Kind("model_server", ("model_server/password",), "the models site's password"),
    Kind("portal", ("portal/password",), "the landing page's password"),
    # A new key and certificate from the same CA: clients that trust the CA see no change.
    Kind("tls", ("ca/server.key", "ca/server.crt"), "the proxy's server key and certificate"),
)


def kind_of(relative: str) -> Kind | None:
    return next((kind for kind in KINDS if any(fnmatch(relative, pattern) for pattern in kind.patterns)), None)


def rotatable(secrets: Path) -> list[str]:
    """Every secret here that `mlenv rotate` renews, as paths relative to secrets/."""
    found = (path.relative_to(secrets).as_posix() for path in secrets.rglob("*") if path.is_file())
    return sorted(name for name in found if not name.endswith(PREVIOUS) and kind_of(name))


def chosen(secrets: Path, names: Sequence[str]) -> list[str]:
    """The secrets `names` (kinds or secrets' paths; none: all) stand for; unknown names raise first."""
    present = rotatable(secrets)
    if not present:
        raise UserError(f"no secrets to rotate in {secrets}: bring the environment up first (mlenv up)")
    if not names:
        return present
    picked: list[str] = []
    unknown = []
    for name in names:
        matched = [found for found in present if kind_of(found).name == name or found == name]  # type: ignore[union-attr]
        picked.extend(found for found in matched if found not in picked)
        if not matched:
            unknown.append(name)
    if unknown:
        known = ", ".join(kind.name for kind in KINDS)
        raise UserError(
            f"not a secret mlenv rotates: {', '.join(unknown)}",
            problems=[f"name a kind ({known}) or a secret `mlenv rotate --list` shows"],
        )
    return picked


def under_way(secrets: Path) -> list[str]:
    """Secrets an unfinished rotation set aside."""
    return sorted(path.relative_to(secrets).as_posix().removesuffix(PREVIOUS) for path in secrets.rglob(f"*{PREVIOUS}"))


def set_aside(secrets: Path, names: Iterable[str]) -> None:
    """Moves each secret to `<file>.previous`, so that the next converge generates a new one."""
    for name in names:
        current = secrets / name
        previous = current.with_name(current.name + PREVIOUS)
        if not previous.exists():
            current.rename(previous)


def finish(secrets: Path) -> list[str]:
    """Forgets the previous values once every consumer has the new ones; the secrets it forgot."""
    done = under_way(secrets)
    for name in done:
        (secrets / (name + PREVIOUS)).unlink()
    return done
