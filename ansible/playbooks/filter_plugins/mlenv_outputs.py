"""Builds the `services` part of outputs.json (the model is mlenv.outputs.Outputs)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def service_endpoints(urls: Mapping[str, str], accounts: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each published service with its URL and, where it has one, its account."""
    return {
        service: {"url": url, **({"account": accounts[service]} if service in accounts else {})}
        for service, url in urls.items()
    }


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"mlenv_service_endpoints": service_endpoints}
