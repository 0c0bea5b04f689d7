"""How far the simulator is from real X-ray scans: can a small classifier tell them apart?

The real development set is HUMS (academic use only: never commit it). Fetch it with
    git clone https://github.com/ElifErarslan1/ElifErarslan1 /data/hums
    git -C /data/hums checkout 648a8d5e9779829569188226f711c8fbb7e2c66e
then run
    .venv/bin/python benchmarks/domain_gap.py --data /data/hums [--scanners parcel_160kv ...]
(about 4 minutes on 2 shared cores). Writes benchmarks/results/domain_gap.json.

For each scanner profile and input representation, as many simulated parcels as real
scans (one seed: the same parcels on every profile) go through the model's own
preprocessing, and a classifier is cross-validated (5 folds, stratified; a real scan's
near-duplicates stay in one fold when atr.data.near_duplicates is available) to tell
them from the real ones. AUROC 0.5 = indistinguishable, 1.0 = always told apart.
  dual_energy    HUMS low/high TIFF pairs (all 172 complete scans, knife and benign),
                 imported with ATR's importer; the real-archive model's geometry
                 (conf/experiment/real_archive.yaml: 256 px canvas, scanner pitch x0.4).
                 The simulator renders at 512 px over its 41 cm field (0.8 mm pitch),
                 the pitch a ~55 cm cabin bag over the ~700 px of HUMS's full-bag scans
                 implies (HUMS states none): an object spans about as many model pixels
                 in both sets.
  pseudo_colour  HUMS's own colour pictures (only its benign scans have one) against the
                 simulator's pseudo-colour PNGs at 256 px (`atr data synth`'s default),
                 both at the default model's geometry (conf/model/default.yaml: 160 px
                 letterbox).
The classifier (benchmarks/domain_features.py): logistic regression on the input
box-averaged to 3x32x32 plus 24 image statistics. It is deliberately small -- linear, no
training beyond seconds -- so a high AUROC means a gap in plain sight, not one a deep
network had to dig out; gradient-boosted trees on the statistics alone, the AUROC of each
statistic group (geometry, material, clutter, background) and the single statistics that
separate best say what the gap is made of. A CNN could only raise the figures.
As a scale, the same classifier is run between the first profile and each other one
(`simulated_between_profiles`): simulated vendors differ too, and where every AUROC is
near 1 the count of statistics that separate on their own (>= 0.9) stays graded.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parent))
import domain_features  # noqa: E402
import machine  # noqa: E402

from atr.config import compose  # noqa: E402
from atr.package.preprocess import PreprocessSpec  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SCANNERS = ["parcel_160kv", "parcel_140kv", "letter_80kv"]
# representation -> (model config overrides giving its PreprocessSpec, simulator image size)
REPRESENTATIONS: dict[str, tuple[list[str], int]] = {
    "dual_energy": (["experiment=real_archive"], 512),
    "pseudo_colour": ([], 256),
}
IMPORT = ["importer=dual_energy", "importer.name=hums", "importer.folders=[HighLow,NotThreats]",
          "importer.class_map={HighLow: knife, NotThreats: null}",
          "importer.complete_labels=threats", "importer.incomplete=skip",
          "importer.progress=false"]


def model_spec(overrides: list[str]) -> PreprocessSpec:
    """The PreprocessSpec a model trained with these overrides would save."""
    pre = OmegaConf.to_container(compose("train", overrides).model.preprocess, resolve=True)
    assert isinstance(pre, dict)
    return PreprocessSpec(**pre)


def import_real(data: Path, work: Path) -> Path:
    from atr.data.importers import import_dataset

    if not data.is_dir():
        raise SystemExit(f"--data {data}: not a folder (fetch HUMS as this file's docstring says)")
    out = work / "hums"
    if not (out / "manifest.parquet").is_file():
        import_dataset(compose("import", [*IMPORT, f"importer.source={data.resolve()}",
                                          f"importer.out={out}", f"paths.root={work}/runtime",
                                          f"paths.data_dir={work}/data"]))
    return out


def real_items(dataset: Path, spec: PreprocessSpec) -> tuple[list[Path], np.ndarray]:
    """The scans this representation reads, and their near-duplicate groups."""
    from atr.data.manifest import read_dataset

    ds = read_dataset(dataset)
    rows = ds.manifest
    if not spec.dual_energy:  # only scans with the scanner's colour picture (not the low grey)
        rows = rows[rows["meta"].map(lambda m: "energy_color" in json.loads(m))]
    try:
        from atr.data.near_duplicates import manifest_groups

        groups = np.asarray(manifest_groups(ds.manifest, ds.root))[rows.index.to_numpy()]
    except ImportError:  # grouping module not available: every scan its own group
        groups = np.arange(len(rows))
    return [ds.root / p for p in rows[spec.input_column]], groups


def simulated_items(work: Path, scanner: str, count: int, size: int, seed: int,
                    column: str) -> list[Path]:
    from atr.data.manifest import read_dataset
    from atr.data.synth import make_dataset

    out = work / f"sim-{scanner}-n{count}-{size}px-s{seed}"
    if not (out / "manifest.parquet").is_file():
        make_dataset(out, count=count, image_size=size, seed=seed, scanner=scanner,
                     splits={"test": 1.0}, workers=2, save_raw=True)
    ds = read_dataset(out)
    return [ds.root / p for p in ds.manifest[column]]


def compare(spec: PreprocessSpec, real: domain_features.Features, real_groups: np.ndarray,
            sim: domain_features.Features, sim_size: int, folds: int,
            seed: int) -> dict[str, Any]:
    started = time.perf_counter()
    result = domain_features.separability(real, sim, folds=folds, seed=seed,
                                          groups_a=real_groups)
    for row in result["top_single_features"]:  # first = real, second = simulated
        row["higher_in"] = {"first": "real", "second": "simulated"}[row["higher_in"]]
        row["median_real"], row["median_sim"] = row.pop("median_first"), row.pop("median_second")
    result["n_real"], result["n_sim"] = result.pop("n_first"), result.pop("n_second")
    result["geometry"] = {"input_size": spec.input_size, "resize": spec.resize,
                          "pixel_scale": spec.pixel_scale, "sim_image_size": sim_size,
                          "representation": spec.representation}
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def _brief(r: dict[str, Any]) -> dict[str, Any]:
    return {"auroc_mean": r["auroc_mean"], "trees_on_statistics": r["trees_on_statistics"]["mean"],
            "content": r["by_feature_group"]["content"]["mean"],
            "statistics_alone_over_0.9": r["statistics_alone_over_0.9"],
            "top_feature": r["top_single_features"][0]["feature"], "n": r["n_first"]}


def machine_line() -> dict[str, Any]:
    info = machine.describe()
    info["nproc"] = len(os.sched_getaffinity(0))
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="the fetched HUMS folder")
    ap.add_argument("--scanners", nargs="+", default=SCANNERS)
    ap.add_argument("--representations", nargs="+", default=list(REPRESENTATIONS),
                    choices=list(REPRESENTATIONS))
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=None,
                    help="keep the import and simulated sets here (default: a temporary folder)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results/domain_gap.json")
    args = ap.parse_args(argv)
    start_machine, started = machine_line(), time.perf_counter()
    load_start = start_machine.pop("load_1min")
    with tempfile.TemporaryDirectory(prefix="atr-domain-gap-") as tmp:
        work = (args.work or Path(tmp)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        dataset = import_real(args.data, work)
        results: dict[str, dict[str, Any]] = {s: {} for s in args.scanners}
        between: dict[str, dict[str, Any]] = {}  # reference: two simulated scanners
        for rep in args.representations:
            overrides, sim_size = REPRESENTATIONS[rep]
            spec = model_spec(overrides)
            paths, groups = real_items(dataset, spec)
            real = domain_features.extract(spec, paths)
            sims = {}
            for scanner in args.scanners:
                t0 = time.perf_counter()
                sims[scanner] = domain_features.extract(spec, simulated_items(
                    work, scanner, len(paths), sim_size, args.seed, spec.input_column))
                r = compare(spec, real, groups, sims[scanner], sim_size, args.folds, args.seed)
                r["seconds_with_simulation"] = round(time.perf_counter() - t0, 1)
                results[scanner][rep] = r
                print(f"{scanner} {rep}: AUROC {r['auroc_mean']:.3f} (trees on statistics "
                      f"{r['trees_on_statistics']['mean']:.3f}; n {r['n_real']}+{r['n_sim']}); "
                      f"groups {({g: v['mean'] for g, v in r['by_feature_group'].items()})}",
                      flush=True)
            first = args.scanners[0]
            between[rep] = {f"{first}_vs_{other}": _brief(domain_features.separability(
                sims[first], sims[other], folds=args.folds, seed=args.seed))
                for other in args.scanners[1:]}
    payload = {
        "setup": {"data": "HUMS (ElifErarslan1/ElifErarslan1@648a8d5e), importer=dual_energy",
                  "real_scans": {rep: results[args.scanners[0]][rep]["n_real"]
                                 for rep in args.representations},
                  "folds_by_near_duplicate_group": find_spec("atr.data.near_duplicates")
                  is not None,
                  "folds": args.folds, "seed": args.seed, "balanced": "n_sim = n_real"},
        "results": results, "simulated_between_profiles": between,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": {**start_machine, "load_1min_start": load_start,
                    "load_1min_end": round(os.getloadavg()[0], 2)},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(payload, indent=2) + "\n")
    tmp_out.replace(args.out)  # atomic: never a half-written result
    print(f"wrote {args.out} in {payload['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
