"""The notebooks run top to bottom (they are documentation that must not rot)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def _execute(name: str, tmp_path: Path) -> list[dict]:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    resources = {"metadata": {"path": str(tmp_path)}}
    NotebookClient(nb, timeout=600, kernel_name="python3", resources=resources).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    return outputs


def _text(outputs: list[dict]) -> str:
    return "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream") + \
        "".join(o.get("data", {}).get("text/plain", "") for o in outputs)


def test_data_notebook(tmp_path: Path) -> None:
    # the class gallery found an example of every class
    assert "16/16 classes shown" in _text(_execute("01_data.ipynb", tmp_path))


@pytest.mark.slow
def test_monitoring_notebook(tmp_path: Path) -> None:
    text = _text(_execute("02_monitoring.ipynb", tmp_path))
    assert "report.html" in text  # the Evidently report of the new scanner was written
    assert "added" in text  # the label queue was filled
