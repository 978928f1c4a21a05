"""Clients of the platform's services for mlenv's own commands, built from outputs.json: the
object store through the proxy's S3 site, Label Studio's API, each with the platform's CA."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mlenv.errors import UserError
from mlenv.outputs import TITLES, Outputs, Service, read_secret

DATASETS_BUCKET = "datasets"


@contextmanager
def names_resolve_to(domain: str, address: str | None) -> Iterator[None]:
    """Inside this block, this process resolves <name>.<domain> to `address` (as curl's --connect-to
    does): the local profiles publish the proxy on loopback, where no DNS names it. TLS still checks
    the certificate for the real name."""
    if address is None:
        yield
        return
    real = socket.getaddrinfo

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        pinned = isinstance(host, str) and (host == domain or host.endswith(f".{domain}"))
        return real(address if pinned else host, *args, **kwargs)

    socket.getaddrinfo = resolve  # type: ignore[assignment]
    try:
        yield
    finally:
        socket.getaddrinfo = real


def domain_of(outputs: Outputs) -> str:
    host = urlsplit(outputs.url("mlflow")).hostname or ""
    return host.split(".", 1)[1] if "." in host else host


def s3(outputs: Outputs, state: Path) -> Any:
    """boto3's S3 client on the proxy's S3 site, as the platform's own identity."""
    import boto3
    from botocore.config import Config

    account = outputs.account("object_store")
    return boto3.client(
        "s3",
        endpoint_url=outputs.url("object_store"),
        region_name=outputs.region,
        aws_access_key_id=read_secret(state, account, "access_key"),
        aws_secret_access_key=read_secret(state, account, "secret_key"),
        # The CA given explicitly: an AWS_CA_BUNDLE in the environment is for other endpoints.
        verify=outputs.ca_certificate or True,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
    )


def _client_arguments(
    outputs: Outputs, state: Path, service: Service, secret: str, *, with_username: bool = False
) -> Any:
    """The arguments of a loop client for `service`: its URL through the proxy, its credentials, the CA."""
    if service not in outputs.services:
        raise UserError(f"this environment has no {TITLES[service]} (outputs.json lists none): run `mlenv up`")
    account = outputs.account(service)
    credentials = [account.username] if with_username else []
    return (outputs.url(service), *credentials, read_secret(state, account, secret), outputs.ssl_context())


def label_studio(outputs: Outputs, state: Path) -> Any:
    from mlenv_loop.labelstudio import LabelStudio

    return LabelStudio(*_client_arguments(outputs, state, "label_studio", "api_token"))


def registry(outputs: Outputs, state: Path) -> Any:
    from mlenv_loop.registry import Registry

    return Registry(*_client_arguments(outputs, state, "mlflow", "password", with_username=True))


def model_server(outputs: Outputs, state: Path) -> Any:
    from mlenv_loop.serving import ModelServer

    return ModelServer(*_client_arguments(outputs, state, "model_server", "password", with_username=True))


def runs(outputs: Outputs, state: Path) -> Any:
    from mlenv_loop.runs import Runs

    return Runs(*_client_arguments(outputs, state, "ml_loop", "api_token"))


class Platform:
    """The clients one mlenv command uses, made on first use from one read of outputs.json."""

    def __init__(self, outputs: Outputs, state: Path) -> None:
        self.outputs = outputs
        self._state = state

    def datasets(self) -> Any:
        from mlenv_loop.datasets import DatasetStore

        if DATASETS_BUCKET not in self.outputs.buckets:
            raise UserError(
                f"this environment has no {DATASETS_BUCKET!r} bucket: add it to object_store.buckets and run `mlenv up`"
            )
        return DatasetStore(s3(self.outputs, self._state), DATASETS_BUCKET)

    def label_studio(self) -> Any:
        return label_studio(self.outputs, self._state)

    def registry(self) -> Any:
        return registry(self.outputs, self._state)

    def runs(self) -> Any:
        return runs(self.outputs, self._state)

    def model_server(self) -> Any:
        return model_server(self.outputs, self._state)


@contextmanager
def platform(state: Path, address: str | None) -> Iterator[Platform]:
    """The platform's clients, reaching the proxy at `address` when given; the loop's errors (a
    dataset, project, model or alias that is not there, a service that refused) become UserErrors."""
    from mlenv import outputs as platform_outputs
    from mlenv_loop.errors import LoopError

    outputs = platform_outputs.read(state)
    with names_resolve_to(domain_of(outputs), address):
        try:
            yield Platform(outputs, state)
        except LoopError as err:
            raise UserError(str(err)) from None
