"""Model-assisted labelling as an experiment: which tasks are shown the model's suggestion.

A task's group follows from a hash of the experiment's name (the loop project's dataset) and the
task's data, never from its id: the same text is in the same group after a restart, a re-import
or a second project of the same dataset. A share of the tasks (the control group, 50 % unless
set) never gets a suggestion, so the labels of the two groups can be compared (`mlenv report
labelling`).

Also here: what a Label Studio labelling config asks of a classifier (the <Choices> control, the
object it names and the task data key it reads), and a suggestion in Label Studio's shape.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal
from xml.etree import ElementTree

from mlenv_loop.errors import LoopError

Group = Literal["assisted", "control"]
GROUPS: tuple[Group, ...] = ("assisted", "control")
# Task meta key under which the service records a task's group and the model that suggested.
META_KEY = "mlenv"
BUCKETS = 10_000


class UnusableConfig(LoopError):
    """The labelling config is not one the service's classifier can suggest for."""


def input_reference(data: dict[str, Any]) -> str:
    """The sha256 of a task's data (keys sorted): the same item, whatever its task id."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def group_of(experiment: str, data: dict[str, Any], control_percent: float) -> Group:
    digest = hashlib.sha256(f"{experiment}\0{input_reference(data)}".encode()).digest()
    bucket = int.from_bytes(digest[:4], "big") % BUCKETS
    return "control" if bucket < control_percent * BUCKETS / 100 else "assisted"


@dataclass(frozen=True)
class ChoiceTarget:
    """Where a classifier's answer goes: the control (from_name), its object (to_name), the data key."""

    from_name: str
    to_name: str
    data_key: str
    choices: tuple[str, ...]


def choice_target(label_config: str) -> ChoiceTarget:
    try:
        root = ElementTree.fromstring(label_config)  # noqa: S314 (Label Studio's own config, from its API)
    except ElementTree.ParseError as err:
        raise UnusableConfig(f"the labelling config is not XML: {err}") from None
    controls = [element for element in root.iter() if element.tag == "Choices"]
    if len(controls) != 1:
        raise UnusableConfig(f"mlenv suggests one <Choices> answer per task; this config has {len(controls)}")
    control = controls[0]
    to_name = control.get("toName", "")
    objects = [element for element in root.iter() if element.get("name") == to_name and element is not control]
    value = objects[0].get("value", "") if objects else ""
    if not value.startswith("$"):
        raise UnusableConfig(f"<Choices toName={to_name!r}> names no object that reads task data ($key)")
    choices = tuple(choice.get("value", "") for choice in control.iter("Choice"))
    return ChoiceTarget(control.get("name", ""), to_name, value[1:], choices)


def suggestion(target: ChoiceTarget, label: str, model_version: str) -> dict[str, Any]:
    """One prediction as Label Studio stores it."""
    result = {"from_name": target.from_name, "to_name": target.to_name, "type": "choices",
              "value": {"choices": [label]}}  # fmt: skip
    return {"result": [result], "model_version": model_version}


def model_version_label(model: str, version: str | None) -> str:
    """The model version Label Studio shows beside a suggestion (and stores on the prediction)."""
    return f"{model} v{version}" if version else f"{model} (none in production yet)"
