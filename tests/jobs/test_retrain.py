"""`atr retrain` / `atr pipeline`: overrides merged by key, train.init_version pinned from
the champion before `dvc repro`, and the whole retraining path on a tiny checkout."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import mlflow
import pytest
from helpers.repo_copy import BIN, REPO, tiny_checkout
from mlflow.tracking import MlflowClient

from atr.config import compose, merge_overrides, runtime_overrides
from atr.retrain import pin_init_version


def test_overrides_merge_by_key_and_carry_the_runtime(tmp_path: Path) -> None:
    assert merge_overrides(["a=1", "+b=2", "c=3"], ["b=4", "~c"], ["d=5"]) == [
        "a=1", "b=4", "~c", "d=5"]
    cfg = compose("retrain", [f"paths.root={tmp_path}", "paths.tracking_uri=http://h:5000",
                              "registry.model_name=m"])
    base = runtime_overrides(cfg)
    assert base[0] == f"paths.root={tmp_path}" and "registry.model_name=m" in base
    assert "paths.tracking_uri=http://h:5000" in base  # set outright: passed on
    assert not any(o.startswith("paths.reports_dir=") for o in base)  # derived: derives
    moved = compose("gate", merge_overrides(base, [f"paths.root={tmp_path / 'x'}"]))
    assert moved.paths.reports_dir == str(tmp_path / "x" / "reports")


def _register(client: MlflowClient, name: str) -> str:
    with mlflow.start_run() as run:
        mlflow.log_text("x", "m/file.txt")
    return client.create_model_version(name, f"{run.info.artifact_uri}/m",
                                       run_id=run.info.run_id).version


def test_pin_init_version_follows_the_champion_and_keeps_the_file(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "pipelines").mkdir(parents=True)
    params = repo / "pipelines" / "params.yaml"
    original = (REPO / "pipelines" / "params.yaml").read_text().replace(
        "models:/atr-screening@champion", "models:/pin-test@champion")
    params.write_text(original)
    cfg = compose("retrain", [f"paths.root={tmp_path / 'rt'}"])

    assert pin_init_version(cfg, repo) is None  # no champion yet: scratch
    assert params.read_text() == original  # already null: untouched, comments and all

    from atr.registry.tracking import configure

    client = configure(cfg)
    client.create_registered_model("pin-test")
    first, second = _register(client, "pin-test"), _register(client, "pin-test")
    client.set_registered_model_alias("pin-test", "champion", first)
    assert pin_init_version(cfg, repo) == f"models:/pin-test/{first}"
    pinned = params.read_text()
    assert f"init_version: models:/pin-test/{first}" in pinned
    assert pinned.replace(f"models:/pin-test/{first}", "null") == original  # one value moved
    client.set_registered_model_alias("pin-test", "champion", second)
    assert pin_init_version(cfg, repo) == f"models:/pin-test/{second}"


def _frontline_feedback(rt: Path, count: int) -> None:
    """What the line and its officers would leave: simulated scanner-B parcels scored by
    v1 (predictions + images in the runtime's stores) and a verdict on each."""
    from atr.data.manifest import read_dataset
    from atr.data.synth import make_dataset
    from atr.policy.taxonomy import default_taxonomy
    from atr.store.image_store import ImageStore
    from atr.store.prediction_store import Feedback, Prediction, ensure_store

    names = default_taxonomy().names
    data = make_dataset(rt.parent / "scanner-b", count=count, image_size=64, seed=21,
                        scanner="parcel_140kv")
    sessions, images = ensure_store(f"sqlite:///{rt / 'predictions' / 'predictions.db'}"), \
        ImageStore(rt / "images")
    t0 = datetime.now(UTC) - timedelta(hours=1)
    with sessions.begin() as s:
        for k, row in read_dataset(data).manifest.iterrows():
            ref = images.put((data / row["image"]).read_bytes())
            s.add(Prediction(request_id=f"r{k}", item_id=f"b-{k}", scanner_id="parcel_140kv",
                             created_at=t0, model_name="atr-test", model_version="1",
                             decision="REVIEW", reason="uncertain", scores={}, image_ref=ref))
            s.add(Feedback(item_id=f"b-{k}", labels={c: int(row[c]) for c in names},
                           source="inspection", who="officer-1", at=t0 + timedelta(minutes=5)))


def _atr(repo: Path, env: dict[str, str], *args: str, timeout: int = 900) -> str:
    done = subprocess.run([str(BIN / "atr"), *args], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-4000:]
    return done.stdout


@pytest.mark.slow
def test_atr_retrain_trains_from_the_champion_on_the_batch_and_gates(tmp_path: Path) -> None:
    repo, env = tiny_checkout(tmp_path)
    (repo / "data" / "frontline").mkdir(parents=True)
    rt = tmp_path / "rt"
    out = _atr(repo, env, "pipeline")
    first = json.loads(out[out.index("{"):])
    assert first["init_version"] is None and "train" in first["stages"]
    _atr(repo, env, "approve", "1", "--by", "tester", "registry.model_name=atr-test")
    _frontline_feedback(rt, count=24)

    out = _atr(repo, env, "retrain", "registry.model_name=atr-test")
    summary = json.loads(out[out.index("{"):])
    assert summary["batch"]["items"] == 24
    pipeline = summary["pipeline"]
    assert pipeline["init_version"] == "models:/atr-test/1"  # the champion, pinned
    assert {"prepare", "train", "evaluate", "register"} <= set(pipeline["stages"])
    assert "synthesize" not in pipeline["stages"]  # the sources did not change
    gate = summary["gate"]
    assert (gate["challenger"], gate["champion"]) == (2, 1)
    assert gate["verdict"] in {"better", "worse", "mixed"} and "frontline" in gate["datasets"]
    assert "approved" not in summary  # a reviewer approves, not atr retrain

    store = f"sqlite:///{rt / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    v2 = client.get_model_version_by_alias("atr-test", "challenger")
    assert str(v2.version) == "2" and v2.tags["gate.champion_version"] == "1"
    assert str(client.get_model_version_by_alias("atr-test", "champion").version) == "1"
    # trained anew, from v1, on a dataset that holds the batch
    assert client.get_run(v2.run_id).data.tags["init_from"] == "models:/atr-test/1"
    batch = Path(summary["batch"]["batch"]).name
    dataset = json.loads((repo / "artifacts" / "dataset" / "dataset.json").read_text())
    assert dataset["frontline"]["batches"] == [batch]
    from atr.package.checksums import sha256_file

    assert v2.tags["data.manifest_sha256"] == sha256_file(
        repo / "artifacts" / "dataset" / "manifest.parquet")
