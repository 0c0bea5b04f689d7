"""A real X-ray archive through ATR: import, k-fold train + calibrate + evaluate, JSON out.

The development set is HUMS (academic use only: never commit it). Fetch it with
    git clone https://github.com/ElifErarslan1/ElifErarslan1 /data/hums
    git -C /data/hums checkout 648a8d5e9779829569188226f711c8fbb7e2c66e
then run
    .venv/bin/python benchmarks/real_images.py --data /data/hums
        [--folds 5] [--epochs 20] [--configs scratch,physics_pretrained,letterbox_160]
It imports the low/high 16-bit TIFF pairs of both classes with ATR's own importer
(`importer=dual_energy`: HighLow/ = knife bags, NotThreats/ = benign bags, threat labels
complete, so low risk = no threat), because HUMS collects its classes differently: its
threat pictures are JPEG and its benign ones TIFF, so a model fed the colour pictures
can learn the compression instead of the knife. The benchmark also reports how well a
trivial classifier on file format, size and aspect ratio alone separates the classes,
for the pairs it uses and for the colour pictures it does not.

Per fold (by scene: near-duplicates stay together; benchmarks/real_folds.py): `atr train`
with conf/experiment/real_archive.yaml and the configuration's overrides, then the
evaluate stage (calibrate on the calib fold, report on the test fold). Configurations:
  scratch             dual-energy attenuation, scanner pitch x0.4 on a 256 px canvas
  physics_pretrained  the same, backbone from `atr pretrain` (simulated parcels)
  letterbox_160       the default model's geometry: the scan shrunk into 160 px
  tiles_2x2           a 416 px canvas scored as 2x2 tiles of 256 px, max-pooled per class
Writes --out (benchmarks/results/real_images.json).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
import machine  # noqa: E402
import real_folds  # noqa: E402
import real_shortcuts  # noqa: E402

from atr.config import compose  # noqa: E402

BASE = ["experiment=real_archive"]
CONFIGS: dict[str, list[str]] = {
    "scratch": [*BASE, "train.init_from=null"],
    "physics_pretrained": [*BASE, "train.init_from=models:/atr-backbone@current",
                           "train.init_missing=error"],
    "letterbox_160": [*BASE, "train.init_from=null", "model.preprocess.resize=letterbox",
                      "model.preprocess.input_size=160"],
    "tiles_2x2": [*BASE, "train.init_from=null", "model.preprocess.input_size=416",
                  "model.preprocess.pixel_scale=0.65", "model.tiles.grid=2",
                  "model.tiles.size=256"],
}
IMPORT = ["importer=dual_energy", "importer.name=hums", "importer.folders=[HighLow,NotThreats]",
          "importer.class_map={HighLow: knife, NotThreats: null}",
          "importer.complete_labels=threats", "importer.incomplete=skip",
          "importer.progress=false"]


def runtime(work: Path) -> list[str]:
    return [f"paths.root={work / 'runtime'}", f"paths.data_dir={work / 'data'}",
            f"paths.artifacts_dir={work / 'artifacts'}"]


def import_archive(data: Path, work: Path) -> Path:
    from atr.data.importers import import_dataset

    out = work / "data" / "imports" / "hums"
    if not (out / "manifest.parquet").is_file():
        import_dataset(compose("import", [*IMPORT, f"importer.source={data}",
                                          f"importer.out={out}", *runtime(work)]))
    return out


def pretrain(work: Path, count: int, epochs: int, again: bool) -> dict[str, Any]:
    """`atr pretrain` in the benchmark's runtime, or the backbone registered there before."""
    from atr.pretrain import run
    from atr.registry.tracking import configure

    if not again:
        client = configure(compose("pretrain", runtime(work)))
        try:
            version = client.get_model_version_by_alias("atr-backbone", "current")
            return {"reused": f"models:/atr-backbone/{version.version}", **version.tags}
        except Exception:  # none registered yet (MlflowException): pretrain now
            pass
    started = time.perf_counter()
    result = run(compose("pretrain", [*runtime(work), f"pretrain.count={count}",
                                      "pretrain.train_overrides=['experiment=pretrain_dual_energy',"
                                      f"'trainer.max_epochs={epochs}',"
                                      "'trainer.enable_progress_bar=false']"]))
    return {**result, "total_s": round(time.perf_counter() - started, 1)}


def run_fold(name: str, fold_dir: Path, work: Path, epochs: int) -> dict[str, Any]:
    from atr.evaluation.job import run as evaluate
    from atr.train import run as train

    out = work / "artifacts" / name / fold_dir.name
    started = time.perf_counter()
    trained = train(compose("train", [*CONFIGS[name], *runtime(work), f"data.dir={fold_dir}",
                                      f"train.out_dir={out / 'model'}",
                                      f"trainer.max_epochs={epochs}",
                                      "trainer.enable_progress_bar=false"]))
    evaluate(compose("evaluate", [*runtime(work), f"evaluate.package_dir={out / 'model'}",
                                  f"evaluate.dataset={fold_dir}",
                                  f"evaluate.out_dir={out / 'eval'}"]))
    scores = pd.read_parquet(out / "eval" / "scores_test.parquet")
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    policy = json.loads((out / "model" / "policy.json").read_text())
    return {"wall_s": round(time.perf_counter() - started, 1), "train_s": trained["wall_time_s"],
            "init": trained.get("init_from"), **outcome(scores, metrics, policy)}


def outcome(scores: pd.DataFrame, metrics: dict[str, Any], policy: dict[str, Any]) -> dict:
    """AUROC, the policy's benign-cleared share, and the oracle's (test truth, zero leaks)."""
    knife = scores["knife"].to_numpy()
    benign = scores["no_threat"].to_numpy() == 1
    low_risk = scores["score_no_threat"].to_numpy()
    worst_threat = low_risk[~benign].max() if (~benign).any() else -np.inf
    return {
        "n_test": int(len(scores)), "n_threat": int(knife.sum()),
        "auroc_knife": float(roc_auc_score(knife, scores["score_knife"])),
        "auroc_low_risk": float(roc_auc_score(benign, low_risk)),
        "policy_mode": policy.get("mode", "certified"),
        "benign_cleared_by_policy": float((scores["decision"][benign] == "CLEAR").mean()),
        "threats_cleared_by_policy": int((scores["decision"][~benign] == "CLEAR").sum()),
        "more_items_to_certify": (policy.get("calibration", {}).get("clear", {})
                                  .get("more_items_to_certify")),
        "oracle_benign_cleared_at_zero_leaks": float((low_risk[benign] > worst_threat).mean()),
        "test_predictions": {"knife": knife.tolist(),
                             "score_knife": scores["score_knife"].round(5).tolist()},
        "warnings": metrics.get("policy_warnings", [])[:1],
    }


def summarise(folds: list[dict[str, Any]]) -> dict[str, Any]:
    aucs = [f["auroc_knife"] for f in folds]
    pooled = []  # one pooled AUROC per repeat: every scan scored once, out of fold
    for seed in sorted({f.get("seed", 0) for f in folds}):
        mine = [f for f in folds if f.get("seed", 0) == seed]
        truth = np.concatenate([f["test_predictions"]["knife"] for f in mine])
        score = np.concatenate([f["test_predictions"]["score_knife"] for f in mine])
        pooled.append(float(roc_auc_score(truth, score)))
    return {"auroc_knife_mean": float(np.mean(aucs)), "auroc_knife_std": float(np.std(aucs)),
            "folds": len(folds), "auroc_knife_pooled": float(np.mean(pooled)),
            "auroc_knife_pooled_per_repeat": pooled,
            "oracle_benign_cleared_mean": float(np.mean(
                [f["oracle_benign_cleared_at_zero_leaks"] for f in folds])),
            "benign_cleared_by_policy_mean": float(np.mean(
                [f["benign_cleared_by_policy"] for f in folds])),
            "policy_modes": sorted({f["policy_mode"] for f in folds}),
            "train_s_mean": float(np.mean([f["train_s"] for f in folds]))}


def paired_gain(results: dict[str, Any]) -> dict[str, Any] | None:
    """physics_pretrained - scratch AUROC on the same folds (same budget, same splits)."""
    if not {"scratch", "physics_pretrained"} <= set(results):
        return None
    def key(f: dict[str, Any]) -> tuple[int, int]:
        return f.get("seed", 0), f["fold"]

    base = {key(f): f["auroc_knife"] for f in results["scratch"]["folds"]}
    gains = [f["auroc_knife"] - base[key(f)] for f in results["physics_pretrained"]["folds"]
             if key(f) in base]
    return {"mean": float(np.mean(gains)), "std": float(np.std(gains)), "folds": len(gains),
            "wins": int(sum(g > 0 for g in gains)), "losses": int(sum(g < 0 for g in gains))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="the fetched HUMS folder")
    ap.add_argument("--work", type=Path, default=Path("runtime/bench-real"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/real_images.json"))
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--configs", default="scratch,physics_pretrained,letterbox_160")
    ap.add_argument("--pretrain-count", type=int, default=6000)
    ap.add_argument("--pretrain-epochs", type=int, default=8)
    ap.add_argument("--pretrain-again", action="store_true",
                    help="pretrain even if --work already holds models:/atr-backbone@current")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=1, help="k-folds drawn with seeds seed..")
    args = ap.parse_args(argv)
    names = [n for n in args.configs.split(",") if n]
    unknown = sorted(set(names) - set(CONFIGS))
    if unknown:
        ap.error(f"unknown configuration(s) {unknown}; known: {sorted(CONFIGS)}")
    work = args.work.resolve()
    result: dict[str, Any] = {"machine_start": machine.describe(), "args": {
        k: str(v) for k, v in vars(args).items()}, "configs": {n: CONFIGS[n] for n in names}}
    dataset = import_archive(args.data, work)
    result["shortcuts"] = real_shortcuts.report(args.data, dataset)
    if "physics_pretrained" in names:
        result["pretraining"] = pretrain(work, args.pretrain_count, args.pretrain_epochs,
                                         args.pretrain_again)
    labels = real_folds.read_dataset(dataset).manifest["knife"].to_numpy()
    groups, result["near_duplicates"] = real_folds.scene_groups(dataset)
    result["scenes"] = int(len(set(groups.tolist())))
    result["results"] = {}
    # Each repeat draws other folds (seed + r): test folds of ~35 scans make one k-fold's
    # mean move by several points, so the comparison is made over repeats x folds.
    for seed in range(args.seed, args.seed + args.repeats):
        folds = real_folds.fold_assignments(labels, groups, args.folds, seed)
        for k in range(args.folds):
            splits = real_folds.fold_splits(folds, k, args.folds, labels, groups, seed)
            fold_dir = real_folds.write_fold(dataset, work / "folds" / f"s{seed}-fold-{k}",
                                             splits)
            for name in names:
                entry = result["results"].setdefault(name, {"folds": []})
                entry["folds"].append({"seed": seed, "fold": k,
                                       "splits": real_folds.fold_summary(splits, labels),
                                       **run_fold(name, fold_dir, work, args.epochs)})
                print(f"{name} seed {seed} fold {k}: AUROC "
                      f"{entry['folds'][-1]['auroc_knife']:.3f}", flush=True)
                real_folds.dump(args.out, result)  # partial results survive an interruption
    for entry in result["results"].values():
        entry["summary"] = summarise(entry["folds"])
    result["pretrained_minus_scratch"] = paired_gain(result["results"])
    result["machine_end"] = machine.describe()
    real_folds.dump(args.out, result)
    print(json.dumps({n: e["summary"] for n, e in result["results"].items()}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
