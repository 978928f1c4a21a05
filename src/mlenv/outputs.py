"""outputs.json: what the services layer hands to everything after it, as one typed model.

One writer (the `Outputs` play of site.yml, from what each role publishes) and one reader
(`read`), used by `status`, `credentials`, the summary of `mlenv up` and the cloud hand-over
to the GitLab program. No secret is in it: each account names the files, relative to the
state folder's secrets/, that hold its secrets.
"""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from mlenv.errors import NEVER_UP, UserError

OUTPUTS_FILE = "outputs.json"
SECRETS_DIR = "secrets"

# The one spelling of each service, everywhere in mlenv (the proxy publishes it as a host name
# of its own: mlflow., s3., labels.; the landing page at the bare domain).
Service = Literal["portal", "mlflow", "object_store", "label_studio", "ml_loop", "model_server"]
TITLES: dict[str, str] = {
    "portal": "Landing page",
    "mlflow": "MLflow",
    "object_store": "S3 object store",
    "label_studio": "Label Studio",
    "ml_loop": "Trigger service",
    "model_server": "Model server",
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Account(_Model):
    username: str
    # Kind of secret (password, api_token, access_key, …) → file relative to secrets/.
    secrets: dict[str, str]


class Endpoint(_Model):
    url: str
    account: Account | None = None


class Outputs(_Model):
    environment: str
    services: dict[Service, Endpoint]
    ca_certificate: str | None = None
    object_store_endpoint: str
    region: str
    buckets: list[str]
    versioned_buckets: list[str]
    # The release each service that migrates a database runs; absent in outputs written before mlenv kept it.
    versions: dict[Service, str] = {}

    def ssl_context(self) -> ssl.SSLContext:
        """Trusts the platform's CA when it has one of its own, else the system's."""
        cafile = self.ca_certificate
        return ssl.create_default_context(cafile=cafile) if cafile else ssl.create_default_context()

    def url(self, service: Service) -> str:
        return self.services[service].url

    def account(self, service: Service) -> Account:
        found = self.services[service].account if service in self.services else None
        if found is None:
            raise UserError(f"outputs.json has no account for {service}: run `mlenv up` again")
        return found


def secret_file(state: Path, account: Account, kind: str) -> Path:
    return state / SECRETS_DIR / account.secrets[kind]


def read_secret(state: Path, account: Account, kind: str) -> str:
    path = secret_file(state, account, kind)
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise UserError(
            f"the secret file {path} is missing: restore it from a backup (the services still use it)"
        ) from None


def read(state: Path) -> Outputs:
    path = state / OUTPUTS_FILE
    if not path.is_file():
        raise UserError(f"no outputs in {state}: this environment was never brought up (mlenv up)", code=NEVER_UP)
    try:
        return Outputs.model_validate(json.loads(path.read_text()))
    except (ValueError, ValidationError) as err:
        detail = str(err).splitlines()[0]
        raise UserError(f"{path} is not what this mlenv writes ({detail}): run `mlenv up` to write it again") from None
