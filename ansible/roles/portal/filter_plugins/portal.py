"""The landing page's list of services, from the proxy's sites."""

from __future__ import annotations

from typing import Any


def portal_services(
    sites: list[dict[str, Any]],
    urls: dict[str, str],
    versions: dict[str, str],
    health_urls: dict[str, str],
    health_paths: dict[str, str],
    titles: dict[str, str],
    own: str,
) -> list[dict[str, Any]]:
    """Each site but the page's own: its service, title, public address, where its health is asked
    and its release (empty where unknown)."""
    found = []
    for site in sites:
        service = site.get("service", site["name"])
        if service == own:
            continue
        found.append(
            {
                "service": service,
                "title": titles.get(service, service),
                "url": urls.get(service, ""),
                "health_url": health_urls.get(service) or site["upstream"] + health_paths.get(service, "/"),
                "version": str(versions.get(service) or ""),
            }
        )
    return found


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"portal_services": portal_services}
