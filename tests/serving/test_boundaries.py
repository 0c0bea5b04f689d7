"""Serving imports inference code only, and loads no pickle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SERVING = Path(__file__).resolve().parents[2] / "serving"
FORBIDDEN = ("torch", "lightning", "timm", "atr.models", "atr.train", "atr.data",
             "atr.registry", "pickle", "cloudpickle", "mlflow.pyfunc")


def test_importing_the_app_pulls_in_no_training_code() -> None:
    code = ("import sys, serving.app, serving.main; "
            f"bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'lightning', 'timm') "
            f"or m.startswith({FORBIDDEN[3:6]!r})]; print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=SERVING.parent, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_no_serving_module_imports_training_code_or_pickle() -> None:
    for path in SERVING.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert not any(name == f or name.startswith(f + ".") for f in FORBIDDEN), \
                    f"{path.name} imports {name}"
