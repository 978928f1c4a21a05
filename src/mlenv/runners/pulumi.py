"""Run the Pulumi programs of pulumi/ through the Automation API, with progress and a log file.

Stack state lives where the operator says (`cloud.pulumi.backend_url`, else PULUMI_BACKEND_URL,
else a folder in the environment's state dir). A folder or bucket backend encrypts secrets
with a passphrase: mlenv generates one on first use and keeps it beside the other secrets.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlenv.errors import UserError
from mlenv.files import write_private

# Automation API imports cost about 0.3 s: they happen inside the functions that run a stack.

PASSPHRASE_FILE = "pulumi/passphrase"  # noqa: S105 (where the generated passphrase is kept, not a secret)


@dataclass(frozen=True)
class StackValue:
    """One config value of a stack; secrets are encrypted in the stack's settings."""

    value: str
    secret: bool = False


@dataclass
class StackProgress:
    """What the engine reported for one program run: resources by operation, and the failures."""

    operations: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return sum(count for op, count in self.operations.items() if op not in {"same", "read"})

    def handle(self, event: Any, on_resource: Callable[[str], None]) -> None:
        outputs = getattr(event, "res_outputs_event", None)
        if outputs is not None:
            op = str(getattr(outputs.metadata.op, "value", outputs.metadata.op))
            self.operations[op] = self.operations.get(op, 0) + 1
            on_resource(f"{op} {outputs.metadata.urn.rsplit('::', 1)[-1]}")
        failed = getattr(event, "res_op_failed_event", None)
        if failed is not None:
            self.failures.append(failed.metadata.urn)
        diagnostic = getattr(event, "diagnostic_event", None)
        if diagnostic is not None and diagnostic.severity == "error":
            self.failures.append(diagnostic.message.strip())
        policy = getattr(event, "policy_event", None)
        if policy is not None and policy.enforcement_level == "mandatory":
            self.failures.append(f"policy {policy.policy_name}: {policy.message.strip()}")


@dataclass(frozen=True)
class PulumiWorkspace:
    """Where the programs are and where their stacks keep state."""

    project_root: Path
    state: Path
    backend_url: str | None = None
    organization: str | None = None
    secrets_provider: str | None = None

    def stack_name(self, environment: str) -> str:
        return f"{self.organization}/{environment}" if self.organization else environment

    def env_vars(self) -> dict[str, str]:
        found: dict[str, str] = {}
        backend = self.backend_url or os.environ.get("PULUMI_BACKEND_URL") or self.local_backend()
        found["PULUMI_BACKEND_URL"] = backend
        needs_passphrase = not backend.startswith("https://") and not self.secrets_provider
        given = os.environ.get("PULUMI_CONFIG_PASSPHRASE") or os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")
        if needs_passphrase and not given:
            if not self.owns_backend():
                # A passphrase made here would be on this machine only: no other operator could decrypt.
                raise UserError(
                    f"the Pulumi backend {backend} is shared: give every operator the stacks' passphrase "
                    "(export PULUMI_CONFIG_PASSPHRASE_FILE=<file>) or set cloud.pulumi.secrets_provider to a KMS key "
                    "(awskms://…, gcpkms://…)"
                )
            found["PULUMI_CONFIG_PASSPHRASE_FILE"] = str(self.passphrase_file())
        # No "a newer CLI exists" call on every run (air-gapped sites; it only prints a notice).
        found["PULUMI_SKIP_UPDATE_CHECK"] = "true"
        return found

    def owns_backend(self) -> bool:
        """The stacks live in the state dir's own folder: only this environment's mlenv uses them."""
        return not self.backend_url and not os.environ.get("PULUMI_BACKEND_URL")

    def local_backend(self) -> str:
        folder = self.state / "pulumi"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        return f"file://{folder}"

    def passphrase_file(self) -> Path:
        path = self.state / "secrets" / PASSPHRASE_FILE
        if not path.exists():
            write_private(path, secrets.token_urlsafe(32))
        return path

    def program_dir(self, program: str) -> Path:
        return self.project_root / "pulumi" / program

    def policy_pack(self) -> str:
        return str(self.project_root / "policies")


# Where --verbose streams the engine's own output (the application's console).
Echo = Callable[[str], None] | None


class PulumiRunError(UserError):
    """A preview, up or destroy that failed; the message names the log."""


def set_secret_config(workspace: Any, stack_name: str, key: str, value: str) -> None:
    """`pulumi config set --secret KEY`, the value on standard input: the Automation API's own config
    calls put every value on the CLI's command line, which any user of the machine can read."""
    result = subprocess.run(
        [workspace.pulumi_command.command, "config", "set", "--secret", "--stack", stack_name, key],
        input=value,
        cwd=workspace.work_dir,
        env={**os.environ, **(workspace.env_vars or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise PulumiRunError(f"pulumi config set --secret {key} failed: {result.stderr.strip()[-2000:]}")


class ProgramRun:
    """One program (pulumi/<program>) on the environment's stack."""

    def __init__(self, workspace: PulumiWorkspace, program: str, environment: str, log: Path) -> None:
        self.workspace = workspace
        self.program = program
        self.environment = environment
        self.log = log

    def _stack(self, config: dict[str, StackValue]) -> Any:
        from pulumi import automation as auto

        stack = auto.create_or_select_stack(
            stack_name=self.workspace.stack_name(self.environment),
            work_dir=str(self.workspace.program_dir(self.program)),
            opts=auto.LocalWorkspaceOptions(
                env_vars=self.workspace.env_vars(), secrets_provider=self.workspace.secrets_provider
            ),
        )
        plain = {key: auto.ConfigValue(value=v.value) for key, v in config.items() if not v.secret}
        if plain:
            stack.set_all_config(plain)
        for key, value in config.items():
            if value.secret:
                set_secret_config(stack.workspace, stack.name, key, value.value)
        return stack

    def _run(self, action: str, config: dict[str, StackValue], on_resource: Callable[[str], None], echo: Echo) -> Any:
        from pulumi.automation import errors

        progress = StackProgress()
        self.log.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self.log.open("a") as log:

            def output(line: str) -> None:
                log.write(line + "\n")
                if echo is not None:
                    echo(line)

            kwargs: dict[str, Any] = {
                "on_output": output,
                "on_event": lambda event: progress.handle(event, on_resource),
                "color": "never",
            }
            if action != "destroy":
                kwargs["policy_packs"] = [self.workspace.policy_pack()]
            if action != "preview":
                # The Automation API would print secret values in the diff; the log keeps them masked.
                kwargs["show_secrets"] = False
            try:
                stack = self._stack(config)
                try:
                    result = getattr(stack, action)(**kwargs)
                except errors.ConcurrentUpdateError:
                    if not self.workspace.owns_backend():
                        raise
                    # A killed earlier run left its lock. The backend is mlenv's own folder and mlenv
                    # holds the environment's lock, so no other update can be running: release it, go on.
                    output("mlenv: releasing the lock an interrupted run left on the stack")
                    stack.cancel()
                    result = getattr(stack, action)(**kwargs)
            except errors.ConcurrentUpdateError:
                raise PulumiRunError(
                    f"the {self.program} stack is locked by another update; if none is running, release it with "
                    f"`pulumi cancel` in {self.workspace.program_dir(self.program)} (log: {self.log})"
                ) from None
            except errors.CommandError as err:
                detail = "; ".join(progress.failures[-3:]) or str(err).strip().splitlines()[-1]
                raise PulumiRunError(f"pulumi {action} of {self.program} failed: {detail} (log: {self.log})") from None
        return stack, result, progress

    def preview(self, config: dict[str, StackValue], on_resource: Callable[[str], None], *, echo: Echo = None) -> dict:
        _, result, _ = self._run("preview", config, on_resource, echo)
        return {str(getattr(op, "value", op)): count for op, count in result.change_summary.items()}

    def up(
        self, config: dict[str, StackValue], on_resource: Callable[[str], None], *, echo: Echo = None
    ) -> tuple[dict[str, Any], StackProgress]:
        """The stack's outputs (plain values; the caller keeps the secret ones in 0600 files)."""
        _, result, progress = self._run("up", config, on_resource, echo)
        return {name: output.value for name, output in result.outputs.items()}, progress

    def destroy(self, on_resource: Callable[[str], None], *, echo: Echo = None) -> StackProgress:
        _, _, progress = self._run("destroy", {}, on_resource, echo)
        return progress
