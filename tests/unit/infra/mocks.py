"""Pulumi's own mocks (no CLI, no cloud): run a program and keep every resource it registers."""

from __future__ import annotations

import json
import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi

ROOT = Path(__file__).resolve().parents[3]


@dataclass
class Registered:
    typ: str
    name: str
    inputs: dict[str, Any]


@dataclass
class RecordingMocks(pulumi.runtime.Mocks):
    resources: list[Registered] = field(default_factory=list)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.resources.append(Registered(args.typ, args.name, dict(args.inputs)))
        outputs = dict(args.inputs)
        # Computed outputs that other resources read; without them their inputs stay unknown.
        if args.typ == "gcp:container/cluster:Cluster":
            outputs.update(name=args.name, endpoint="203.0.113.10", masterAuth={"clusterCaCertificate": "Q0E="})
        elif args.typ == "aws:eks/cluster:Cluster":
            outputs.update(name=args.name, endpoint="https://eks.example", certificateAuthority={"data": "Q0E="})
        elif args.typ == "aws:ec2/launchTemplate:LaunchTemplate":
            outputs["latestVersion"] = 1
        elif args.typ == "aws:iam/role:Role":
            outputs.update(name=args.name, arn=f"arn:aws:iam::123456789012:role/{args.name}")
        elif args.typ == "gcp:serviceaccount/account:Account":
            outputs["email"] = f"{args.inputs['accountId']}@project.iam.gserviceaccount.com"
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        return {}

    def of_type(self, typ: str) -> list[Registered]:
        return [resource for resource in self.resources if resource.typ == typ]


def run_program(
    program: str, project: str, config: dict[str, Any], mocks: RecordingMocks | None = None
) -> RecordingMocks:
    """Run pulumi/<program>/__main__.py under mocks with the given stack config."""
    mocks = mocks or RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project=project, stack="test", preview=False)
    pulumi.runtime.set_all_config(
        {f"{project}:{key}": value if isinstance(value, str) else json.dumps(value) for key, value in config.items()}
    )

    @pulumi.runtime.test
    def build() -> None:
        runpy.run_path(str(ROOT / "pulumi" / program / "__main__.py"), run_name="__main__")

    build()
    return mocks
