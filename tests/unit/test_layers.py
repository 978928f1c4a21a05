"""Data and calls flow down the layers: no module of mlenv imports one of a higher layer.

config stands alone (above only the leaf helpers); the profiles report through an interface and
never import the CLI's application; only the CLI imports it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src/mlenv"

# Lowest first; a module may import its own layer and those below.
LAYERS = [
    {"errors", "files", "paths", "rules", "accelerators", "reporting", "lock", "encryption", "rotation", "__init__"},
    {"config"},
    {"outputs", "clients", "inputs", "settings", "hostimage", "localhost", "preflight", "health", "handover", "starter"}
    | {"runners", "training_env", "report_page", "backup", "releases", "bundle"},
    {"infra"},
    {"profiles"},
    {"app"},
    {"cli"},
]


def layer_of(module: str) -> int:
    top = module.removeprefix("mlenv.").split(".")[0] or "__init__"
    for index, names in enumerate(LAYERS):
        if top in names:
            return index
    raise AssertionError(f"mlenv.{top} is in no layer: add it to LAYERS")


def is_module(name: str) -> bool:
    return (PACKAGE / f"{name}.py").is_file() or (PACKAGE / name).is_dir()


def is_mlenv(module: str) -> bool:
    """mlenv_loop is a package of its own (it also runs where mlenv is not installed), not a layer."""
    return module == "mlenv" or module.startswith("mlenv.")


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and is_mlenv(node.module):
            found.add(node.module)
            if node.module == "mlenv":  # `from mlenv import outputs` names a module; `__version__` the package
                found.update(
                    f"mlenv.{alias.name}" if is_module(alias.name) else "mlenv.__init__" for alias in node.names
                )
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if is_mlenv(alias.name))
    return {name.removeprefix("mlenv.mlenv") for name in found if name != "mlenv"}


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(PACKAGE)))
def test_no_import_climbs_a_layer(path: Path) -> None:
    module = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    own = layer_of(module)
    upward = sorted(name for name in imports(path) if layer_of(name) > own)
    assert not upward, f"mlenv.{module} (layer {own}) imports {upward} from above"


def test_every_module_has_a_layer() -> None:
    assert len(MODULES) > 30
    for path in MODULES:
        layer_of(".".join(path.relative_to(PACKAGE).with_suffix("").parts))


def test_the_loop_package_stands_alone() -> None:
    """mlenv_loop runs in the trigger service's virtualenv on the host, where mlenv is not installed."""
    loop = PACKAGE.parent / "mlenv_loop"
    modules = sorted(loop.rglob("*.py"))
    assert len(modules) >= 3
    for path in modules:
        assert not imports(path), f"{path.relative_to(loop.parent)} imports {sorted(imports(path))} from mlenv"
