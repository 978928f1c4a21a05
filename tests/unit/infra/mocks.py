"""Pulumi's own mocks (no CLI, no cloud): run a program and keep every resource it registers."""

from __future__ import annotations

import json
import runpy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi

ROOT = Path(__file__).resolve().parents[3]


GITLAB_OUTPUTS = {
    "gitlab:index/group:Group": lambda a: {"fullPath": a.inputs["path"]},
    "gitlab:index/project:Project": lambda a: {"pathWithNamespace": f"team/{a.inputs['path']}"},
    "gitlab:index/userRunner:UserRunner": lambda a: {"token": f"glrt-{a.name}"},
    "gitlab:index/pipelineTrigger:PipelineTrigger": lambda a: {"token": "glptt-trigger"},
    "gitlab:index/groupDeployToken:GroupDeployToken": lambda a: {"token": "gldt-deploy"},
}


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
        elif args.typ == "pulumi:pulumi:StackReference":
            outputs["outputs"] = {"kubeconfig": "apiVersion: v1\nkind: Config\n"}
        elif args.typ.startswith("gitlab:"):
            outputs.update(GITLAB_OUTPUTS.get(args.typ, lambda a: {})(args))
            # GitLab ids are numbers; the program turns them into ints.
            return str(100 + len(self.resources)), outputs
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        if args.token == "gitlab:index/getGroup:getGroup":
            return {"groupId": 42, "id": "42", "fullPath": args.args.get("fullPath")}
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


def assert_rejected(build: Callable[[dict, RecordingMocks], object], config: dict, expected: str) -> None:
    """A bad config raises with `expected` in its message, before any resource is registered."""
    mocks = RecordingMocks()
    try:
        build(config, mocks)
    except Exception as err:  # the programs raise ValueError, ConfigError or Pulumi's ConfigMissingError
        assert expected in str(err)
        assert mocks.resources == [], f"registered before the config was rejected: {[r.name for r in mocks.resources]}"
        return
    raise AssertionError(f"the config was accepted: {config}")
