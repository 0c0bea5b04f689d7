"""pipelines/params.yaml written by code (atr/pipeline_params.py), and the demo's progress
display (atr/demo_progress.py): comments survive, unchanged values leave the file alone,
bad keys are named, and every stage is timed under its name."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from atr.config import compose
from atr.demo_progress import DEMO_STAGES, Progress
from atr.pipeline_params import PARAMS, apply_overlay, read_params, update_params

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / PARAMS).parent.mkdir(parents=True)
    shutil.copy(REPO / PARAMS, tmp_path / PARAMS)
    return tmp_path


def test_overlay_sets_list_items_and_keeps_comments(repo: Path) -> None:
    before = (repo / PARAMS).read_text()
    quick = list(compose("demo", []).demo.pipeline)  # the default demo profile's overlay
    changed = apply_overlay(repo, quick)
    assert sorted(changed) == sorted(item.split("=")[0] for item in quick)
    params = read_params(repo)
    assert params["dataset"]["sources"][0]["count"] == 8000
    assert params["train"]["experiment"] == "quick" and params["train"]["max_epochs"] == 4
    after = (repo / PARAMS).read_text()
    comments = [line for line in before.splitlines() if line.lstrip().startswith("#")]
    assert comments == [line for line in after.splitlines() if line.lstrip().startswith("#")]
    assert apply_overlay(repo, quick) == []  # equal values: nothing rewritten


def test_full_profile_is_the_committed_pipeline(repo: Path) -> None:
    before = (repo / PARAMS).read_text()
    assert apply_overlay(repo, list(compose("demo", ["demo_profile=full"]).demo.pipeline)) == []
    assert (repo / PARAMS).read_text() == before


def test_bad_keys_are_named(repo: Path) -> None:
    with pytest.raises(KeyError, match="no block 'trian'"):
        update_params(repo, {"trian.max_epochs": 1})
    with pytest.raises(KeyError, match="no item 5 in a list of 1"):
        update_params(repo, {"dataset.sources.5.count": 1})
    with pytest.raises(ValueError, match="expected key=value"):
        apply_overlay(repo, ["train.max_epochs"])


def test_progress_times_every_stage_by_name() -> None:
    said: list[str] = []
    progress = Progress(said.append)
    progress.skip(DEMO_STAGES[0], "exists")
    for name in DEMO_STAGES[1:]:
        with progress.stage(name):
            pass
    assert list(progress.seconds) == list(DEMO_STAGES)
    n = len(DEMO_STAGES)
    assert said[0] == f"[1/{n}] {DEMO_STAGES[0]}: skipped (exists)"
    assert said[-1].startswith(f"[{n}/{n}] report: 0 s (total ")
    with pytest.raises(KeyError, match="unknown demo stage"), progress.stage("v3"):
        pass
