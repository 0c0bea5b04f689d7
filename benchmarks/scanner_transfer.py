"""How a model package transfers to another scanner: the same parcels on both scanners.

    .venv/bin/python benchmarks/scanner_transfer.py models:/atr-screening/1 models:/atr-screening/2
    .venv/bin/python benchmarks/scanner_transfer.py artifacts/model --count 1000

One seed gives the same parcel on every scanner profile (the scene and the noise draw
are separate streams), so the two sets differ only in the scanner. For each package and
scanner: AUROC of the clear score, what the package's own policy does (paper-only items
cleared, leaks, threat items cleared), and paper-only items cleared at the target leak
rate with the threshold set on the set's own truth (atr.line.metrics.clear_rate_at_leak),
which separates how well the model ranks from whether its calibration still holds.
Writes benchmarks/results/scanner_transfer.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / "runtime" / "bench-transfer"


def package_dir(ref: str) -> Path:
    """A package folder, or a registered version (downloaded and checksum-verified)."""
    if not ref.startswith("models:/"):
        return Path(ref)
    from atr.config import compose
    from atr.evaluation.job import registered_package

    return registered_package(compose("evaluate", [f"evaluate.model={ref}"]), ref)


def paired_sets(scanners: list[str], count: int, seed: int, size: int) -> dict[str, Path]:
    from atr.data.synth import make_dataset

    sets = {}
    for scanner in scanners:
        out = CACHE / f"{scanner}-n{count}-s{seed}-{size}px"
        if not (out / "manifest.parquet").is_file():
            make_dataset(out, count=count, image_size=size, seed=seed, scanner=scanner,
                         splits={"test": 1.0}, workers=2)
        sets[scanner] = out
    return sets


def measure(scorer: Any, dataset: Path, leak_rate: float) -> dict:
    from sklearn.metrics import roc_auc_score

    from atr.evaluation.scoring import add_decisions, load_dataset, score_column, score_dataset
    from atr.line.metrics import clear_rate_at_leak

    frame = add_decisions(score_dataset(scorer, load_dataset(dataset)), scorer.policy,
                          scorer.outputs)
    paper = frame.paper_only.to_numpy() == 1
    cleared = frame.decision.to_numpy() == "CLEAR"
    threat = frame[list(scorer.taxonomy.threats)].to_numpy().any(axis=1)
    clear_score = frame[score_column(scorer.outputs[0])].to_numpy()
    records = [{"decision": d, "paper_only": int(p), "clear_score": float(s)}
               for d, p, s in zip(frame.decision, paper, clear_score, strict=True)]
    return {"items": int(len(frame)), "paper_only_items": int(paper.sum()),
            "auroc_paper_only": round(float(roc_auc_score(paper, clear_score)), 4),
            "policy_paper_only_clear_rate": round(float(cleared[paper].mean()), 4),
            "policy_leaks": int(cleared[~paper].sum()),
            "policy_leak_rate": round(float(cleared[~paper].mean()), 4),
            "policy_threats_cleared": int((cleared & threat).sum()),
            "at_target_leak": clear_rate_at_leak(records, leak_rate)}


def _pct(rate: float | None) -> str:
    return "n/a" if rate is None else f"{100 * rate:.1f} %"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("packages", nargs="+", help="package folders or models:/ references")
    parser.add_argument("--scanners", nargs="+", default=["parcel_160kv", "parcel_140kv"])
    parser.add_argument("--count", type=int, default=2500)
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--leak-rate", type=float, default=0.005)
    parser.add_argument("--out", type=Path,
                        default=REPO / "benchmarks" / "results" / "scanner_transfer.json")
    args = parser.parse_args()
    start = time.time()
    sets = paired_sets(args.scanners, args.count, args.seed, args.image_size)
    from atr.package.onnx_scorer import OnnxScorer

    results = {}
    for ref in args.packages:  # one download and one ONNX session per package
        scorer = OnnxScorer(package_dir(ref))
        results[ref] = {scanner: measure(scorer, path, args.leak_rate)
                        for scanner, path in sets.items()}
    for ref, by_scanner in results.items():
        for scanner, r in by_scanner.items():
            print(f"{ref} {scanner}: AUROC {r['auroc_paper_only']}, policy clears "
                  f"{100 * r['policy_paper_only_clear_rate']:.1f} % (leak "
                  f"{100 * r['policy_leak_rate']:.2f} %, {r['policy_threats_cleared']} threats), "
                  f"{_pct(r['at_target_leak']['paper_only_clear_rate'])} "
                  f"at a {100 * args.leak_rate:g} % leak rate")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "setup": {"count": args.count, "seed": args.seed, "image_size": args.image_size,
                  "leak_rate": args.leak_rate, "scanners": args.scanners},
        "results": results, "seconds": round(time.time() - start, 1),
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
    }, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
