"""A Label Studio project with the starter's labelling config and sample texts, labelled through
its API as an annotator would."""

from __future__ import annotations

import json

from tests.e2e.clients import label_studio
from tests.e2e.conftest import Stack
from tests.helpers.template_venv import TEMPLATE

SAMPLE = [json.loads(line) for line in (TEMPLATE / "data/sample.jsonl").read_text().splitlines()]


class Project:
    """A Label Studio project with the starter's labelling config and its sample texts as tasks."""

    def __init__(self, stack: Stack, title: str) -> None:
        self.stack = stack
        config = (TEMPLATE / "label_config.xml").read_text()
        status, project = label_studio(stack, "POST", "projects", {"title": title, "label_config": config})
        assert status == 201, project
        self.id = project["id"]
        status, _ = label_studio(stack, "POST", f"projects/{self.id}/import", [{"text": row["text"]} for row in SAMPLE])
        assert status == 201
        found = label_studio(stack, "GET", f"tasks?project={self.id}&page_size=1000")[1]["tasks"]
        label_by_text = {row["text"]: row["label"] for row in SAMPLE}
        self.tasks = sorted((task["id"], label_by_text[task["data"]["text"]]) for task in found)
        self.labelled = 0

    def label(self, count: int, only: str | None = None) -> list[int]:
        """The next `count` tasks get the sample's label (or `only`), as an annotator would give it;
        the new annotations' ids."""
        made = []
        for task_id, sample_label in self.tasks[self.labelled : self.labelled + count]:
            label = only or sample_label
            result = [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]
            status, answer = label_studio(self.stack, "POST", f"tasks/{task_id}/annotations", {"result": result})
            assert status == 201, answer
            made.append(answer["id"])
        self.labelled += count
        return made
