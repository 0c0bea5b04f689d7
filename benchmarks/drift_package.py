"""The drift benchmark's model: a small real package trained on simulated parcels, cached
in runtime/bench-drift and rebuilt (with its scored streams) when the model config changes.
"""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
IMAGE_SIZE = 96
# The benchmark model's dataset: its val split (1050 items) becomes reference.parquet.
DATASET = {"count": 3500, "seed": 11,
           "splits": {"train": 0.4, "val": 0.3, "calib": 0.25, "test": 0.05}}
TRAIN_OVERRIDES = [f"model.preprocess.input_size={IMAGE_SIZE}", "data.batch_size=64",
                   "data.num_workers=0", "trainer.max_epochs=6",
                   "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]
# ~900 calibration items: a looser leak target than production's 0.005 (which needs
# >= 598 non-paper items) so that calibration accepts the set.
EVAL_OVERRIDES = ["policy.leak_rate_target=0.05", "policy.min_threat_positives=5"]


def model_key() -> str:
    """What the cached package and streams were made from: a change here rebuilds both."""
    import hashlib

    recipe = json.dumps([DATASET, TRAIN_OVERRIDES, EVAL_OVERRIDES, IMAGE_SIZE])
    conf = "".join((REPO / "conf" / name).read_text() for name in (
        "model/default.yaml", "augment/default.yaml", "data/default.yaml"))
    return hashlib.sha256((recipe + conf + simulator_key()).encode()).hexdigest()[:16]


def simulator_key() -> str:
    """The simulator's code and scanner/mix profiles: a change re-renders the data too."""
    import hashlib

    files = sorted([*(REPO / "atr" / "xray").rglob("*.py"), *(REPO / "conf" / "scanner").glob(
        "*.yaml"), *(REPO / "conf" / "mix").glob("*.yaml")])
    return hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()[:16]


def drop_stale_cache(cache: Path) -> None:
    """The package and its scored streams go stale when the model config changes, the
    simulated dataset too when the simulator does."""
    import shutil

    stamp = cache / "model_key.txt"
    if stamp.is_file() and stamp.read_text().strip() == model_key():
        return
    stale = ["artifacts", "streams", "runtime"]
    sim_stamp = cache / "simulator_key.txt"
    if not (sim_stamp.is_file() and sim_stamp.read_text().strip() == simulator_key()):
        stale.append("data")
    for name in stale:
        shutil.rmtree(cache / name, ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    stamp.write_text(model_key() + "\n")
    sim_stamp.write_text(simulator_key() + "\n")


def build_package(cache: Path) -> Path:
    """Simulated dataset -> `atr train` -> `atr evaluate` (policy.json + reference.parquet)."""
    from atr.config import compose
    from atr.data.synth import make_dataset
    from atr.evaluation.job import run as evaluate
    from atr.train import run as train

    package = cache / "artifacts" / "model"
    if (package / "reference.parquet").is_file():
        return package
    paths = [f"paths.root={cache / 'runtime'}", f"paths.data_dir={cache / 'data'}",
             f"paths.artifacts_dir={cache / 'artifacts'}"]
    data = cache / "data" / "synth" / "bench"
    if not (data / "manifest.parquet").is_file():
        make_dataset(data, count=DATASET["count"], image_size=IMAGE_SIZE, seed=DATASET["seed"],
                     splits=DATASET["splits"], workers=2)
    train(compose("train", [*paths, f"data.dir={data}", *TRAIN_OVERRIDES]))
    evaluate(compose("evaluate", [*paths, f"data.dir={data}", *EVAL_OVERRIDES]))
    return package


# Streams: (name, simulate_stream kwargs). Stationary = same scanner and mix as the
# reference; drifts start after a window of stationary items (the onset).
