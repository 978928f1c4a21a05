"""Where the inventory disagrees with mlenv.yaml (the settings layer mlenv writes), per host."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def mlenv_setting_conflicts(hosts: list[str], hostvars: Mapping[str, Any], settings: Mapping[str, Any]) -> list[str]:
    """One message per variable that a host's inventory sets to another value than mlenv.yaml."""
    found: list[str] = []
    for variable, setting in settings.items():
        differing = [
            host for host in hosts if variable in hostvars[host] and hostvars[host][variable] != setting["value"]
        ]
        if differing:
            first = hostvars[differing[0]][variable]
            found.append(
                f"{variable}: mlenv.yaml ({setting['source']}) sets {setting['value']!r}, but the inventory sets "
                f"{first!r} for {', '.join(differing)} (in its group_vars, host_vars or hosts file); "
                f"remove it there or set the same value in both."
            )
    return found


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"mlenv_setting_conflicts": mlenv_setting_conflicts}
