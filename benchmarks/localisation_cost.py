"""What localisation costs the line: `atr serve` with serve.localisation on and off, in one
run, same model, same items, same client (benchmarks/load_client.py).

    .venv/bin/python benchmarks/localisation_cost.py --package DIR
        [--requests 600] [--concurrency 8] [--out benchmarks/results/localisation_cost.json]

--package: a package with a heat-map (localisation.json) and a policy (atr train + atr
evaluate). Its clear threshold is set to the median paper_only score of the benchmark's
parcels, so that about half clear and half do not (a short training's calibrated policy
may be triage-only, which never clears): the figure then shows both what the non-cleared
half pays and that the cleared half pays nothing. Also measured in process: the box
extraction (atr.package.localisation.localise) per non-cleared item, and the ONNX run with
and without the `heatmap` output fetched.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from atr.config import compose  # noqa: E402
from atr.line.parcels import render_parcels  # noqa: E402
from atr.line.plan import Phase  # noqa: E402
from atr.policy.taxonomy import default_taxonomy  # noqa: E402
from benchmarks.machine import describe  # noqa: E402
from benchmarks.serving_throughput import Server, free_port, measure, post_body  # noqa: E402


def half_clearing_copy(source: Path, dest: Path, pngs: list[bytes]) -> float:
    """A copy of the package whose clear threshold is the median paper_only score here."""
    from atr.package.checksums import package_checksums
    from atr.package.layout import MANIFEST_FILE
    from atr.package.onnx_scorer import load_scorer
    from atr.package.preprocess import decode_image
    from atr.policy.decision import Policy

    shutil.copytree(source, dest)
    (dest / "run.json").unlink(missing_ok=True)  # a run of another MLflow store
    scorer = load_scorer(dest)
    scores, _ = scorer.score_images([decode_image(b) for b in pngs])
    threshold = float(np.median(scores[:, 0]))
    old = scorer.policy
    Policy(outputs=old.outputs, clear_threshold=threshold,
           inspect_thresholds=dict(old.inspect_thresholds), targets=dict(old.targets)
           ).save(dest / "policy.json")
    (dest / "plausibility.json").unlink(missing_ok=True)  # generic defaults: no OOD veto
    (dest / MANIFEST_FILE).write_text(json.dumps({"name": "localisation-cost", "sha256": {
        k: v for k, v in package_checksums(dest).items() if k != MANIFEST_FILE}}))
    return threshold


def in_process(package: Path, pngs: list[bytes]) -> dict[str, Any]:
    from atr.package.localisation import localise
    from atr.package.onnx_scorer import load_scorer
    from atr.package.preprocess import decode_image

    scorer = load_scorer(package, intra_op_threads=2)
    images = [decode_image(b) for b in pngs[:64]]
    batch = images[:16]
    out: dict[str, Any] = {}
    for name, fn in (("onnx_batch16_ms_without_heatmap", lambda: scorer.score_images(batch)),
                     ("onnx_batch16_ms_with_heatmap",
                      lambda: scorer.score_images_localised(batch))):
        fn()
        t = time.perf_counter()
        for _ in range(10):
            fn()
        out[name] = round((time.perf_counter() - t) / 10 * 1000, 2)
    _, _, heat = scorer.score_images_localised(images)
    t = time.perf_counter()
    for k, im in enumerate(images):
        localise(heat[k], scorer.localisation, scorer.preprocess, *im.shape[:2])
    out["localise_ms_per_item"] = round((time.perf_counter() - t) / len(images) * 1000, 3)
    return out


def stored_counts(db: Path, prefix: str) -> dict[str, Any]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT decision, localisation FROM predictions WHERE item_id LIKE ?",
                            (f"{prefix}-%",)).fetchall()
    with_loc = [(d, loc) for d, loc in rows if loc not in (None, "null")]
    return {"rows": len(rows), "decisions": {d: sum(r[0] == d for r in rows)
                                             for d in {r[0] for r in rows}},
            "with_localisation": len(with_loc),
            "clear_with_localisation": sum(d == "CLEAR" for d, _ in with_loc)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--package", type=Path, required=True)
    ap.add_argument("--requests", type=int, default=600)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2, help="on/off alternated this many times")
    ap.add_argument("--work", type=Path, default=Path("/tmp/atr-localisation-cost"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/localisation_cost.json"))
    args = ap.parse_args()
    work = args.work
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    overrides = [f"paths.root={work / 'runtime'}", f"paths.data_dir={work / 'data'}",
                 f"paths.artifacts_dir={work / 'artifacts'}"]
    phase = Phase(0, "bench", "parcel_160kv", "default", 200)
    pngs = [p.png for p in render_parcels([phase], default_taxonomy(), 160, 11, "bench",
                                          workers=2)]
    package = work / "artifacts" / "model"
    threshold = half_clearing_copy(args.package, package, pngs)
    (package.parent / "eval").mkdir(exist_ok=True)

    from atr.demo_service import UNLIMITED, issue_keys
    from atr.registry.approve import approve
    from atr.registry.register import register_package
    from atr.store.migrations import upgrade

    version = register_package(package, compose("register", [
        *overrides, f"register.package_dir={package}",
        f"register.eval_dir={package.parent / 'eval'}"])).version
    approve(compose("approve", overrides), version=int(version), by="benchmark")
    db = work / "runtime" / "predictions" / "predictions.db"
    upgrade(f"sqlite:///{db}")
    auth = {"X-API-Key": issue_keys(work / "runtime" / "keys.yaml", ["parcel_160kv"],
                                    "bench").scanner}
    venv_bin = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": os.pathsep.join([venv_bin, os.environ.get("PATH", "")])}
    res: dict[str, Any] = {"machine": describe(), "load_avg_1m_start": os.getloadavg()[0],
                           "package": str(args.package), "clear_threshold_set": threshold,
                           "requests": args.requests, "concurrency": args.concurrency,
                           "in_process": in_process(package, pngs), "runs": []}
    for rnd, setting in itertools.product(range(args.rounds), ("true", "false")):
        sent = itertools.count()
        prefix = f"r{rnd}-{setting}"
        scan = post_body("/v1/scans", pngs, "image/png", lambda k, p=prefix, c=sent: {
            "item_id": f"{p}-{next(c)}", "scanner_id": "parcel_160kv"})
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with Server([sys.executable, "-m", "atr.cli", "serve", *overrides, *UNLIMITED,
                     f"serve.localisation={setting}", "serve.audit_share=0.0",
                     f"serve.port={port}"], f"{url}/ready", env,
                    work / f"serve-{prefix}.log") as served:
            got = measure("aiohttp", url, scan, args.requests, args.concurrency, 30,
                          headers=auth, server=served)
        got.update({"localisation": setting == "true", "round": rnd,
                    "stored": stored_counts(db, prefix)})
        res["runs"].append(got)
        print(f"serve.localisation={setting} round {rnd}: {got['throughput_per_s']} items/s, "
              f"p50 {got['latency_ms'].get('p50')} ms; {got['stored']}", flush=True)
    for flag in (True, False):
        runs = [r for r in res["runs"] if r["localisation"] is flag]
        res[f"throughput_per_s_localisation_{'on' if flag else 'off'}"] = round(
            float(np.mean([r["throughput_per_s"] for r in runs])), 2)
    res["load_avg_1m_end"] = os.getloadavg()[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps({k: v for k, v in res.items() if k not in ("machine", "runs")}, indent=2))


if __name__ == "__main__":
    main()
