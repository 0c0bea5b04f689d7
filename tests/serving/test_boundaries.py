"""Serving imports inference code only, and loads no pickle; the model package room
(atr/package, which serving and the pyfunc share) imports neither the registry nor
training code."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SERVING = REPO / "serving"
PACKAGE = REPO / "atr" / "package"
FORBIDDEN = ("torch", "lightning", "timm", "atr.models", "atr.train", "atr.data",
             "atr.registry", "pickle", "cloudpickle", "mlflow.pyfunc")
# The only parts of atr the service may import: everything else is jobs and training.
SERVING_MAY_USE = ("atr.package", "atr.store", "atr.policy")
TRAINING = ("torch", "lightning", "timm", "atr.models", "atr.train", "atr.pretrain")


def imported_modules(root: Path) -> Iterator[tuple[Path, str]]:
    """(file, module) for every import statement under root, function-level ones included
    (ast.walk visits every node); relative imports resolve inside root's own package."""
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                yield from ((path, alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                yield path, ("." * node.level) + (node.module or "")


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_importing_the_app_pulls_in_no_training_code() -> None:
    code = ("import sys, serving.app, serving.main; "
            f"bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'lightning', 'timm') "
            f"or m.startswith({FORBIDDEN[3:6]!r})]; print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_no_serving_module_imports_training_code_or_pickle() -> None:
    for path, name in imported_modules(SERVING):
        assert not _within(name, FORBIDDEN), f"{path.name} imports {name}"


def test_serving_imports_of_atr_are_package_store_and_policy_only() -> None:
    bad = [f"{path.relative_to(REPO)} imports {name}" for path, name in imported_modules(SERVING)
           if _within(name, ("atr",)) and not _within(name, SERVING_MAY_USE)]
    assert not bad, bad


def test_the_package_room_imports_neither_the_registry_nor_training_code() -> None:
    bad = [f"{path.relative_to(REPO)} imports {name}" for path, name in imported_modules(PACKAGE)
           if _within(name, ("atr.registry", "serving", *TRAINING))]
    assert not bad, bad
    assert any(name.startswith("atr.") for _, name in imported_modules(PACKAGE))  # walked


def test_the_scan_walks_function_level_imports(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("def f():\n    import atr.registry.approve\n"
                                   "    from atr.models import backbone\n")
    assert [n for _, n in imported_modules(tmp_path)] == ["atr.registry.approve", "atr.models"]
