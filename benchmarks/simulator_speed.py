"""Simulator throughput: images/s at a given size, single process and with worker processes.

    python benchmarks/simulator_speed.py --n 400 --workers 2 \
        --out benchmarks/results/simulator_speed.json

BLAS is pinned to one thread per process (set before numpy loads): the
per-image matrices are small, and threaded BLAS only fights the workers.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

_SIM = None


def _build(scanner: str, mix: str, size: int):
    import yaml

    from atr.config import conf_dir
    from atr.policy.taxonomy import default_taxonomy
    from atr.xray import ClassMix, XraySimulator, load_profile

    with open(conf_dir() / "mix" / f"{mix}.yaml") as fh:
        mix_cfg = ClassMix.from_dict(yaml.safe_load(fh))
    return XraySimulator(load_profile(scanner), default_taxonomy(), mix_cfg, image_size=size)


def _init(scanner: str, mix: str, size: int) -> None:
    global _SIM
    _SIM = _build(scanner, mix, size)
    _SIM.render(0)  # warm the physics tables and colour LUT outside the timing


def _render_range(seeds: range) -> int:
    for s in seeds:
        _SIM.render(s)
    return len(seeds)


def run(n: int, workers: int, scanner: str, mix: str, size: int) -> dict:
    sim = _build(scanner, mix, size)
    sim.render(0)
    t0 = time.perf_counter()
    for s in range(n):
        sim.render(s)
    single = n / (time.perf_counter() - t0)
    result = {"images_per_s_single_process": round(single, 1),
              "ms_per_image_single_process": round(1000 / single, 2)}
    if workers > 1:
        chunks = [range(i, n, workers * 8) for i in range(workers * 8)]
        with ProcessPoolExecutor(workers, initializer=_init, initargs=(scanner, mix, size)) as ex:
            list(ex.map(_render_range, [range(w, w + 1) for w in range(workers)]))  # warm up
            t0 = time.perf_counter()
            done = sum(ex.map(_render_range, chunks))
            multi = done / (time.perf_counter() - t0)
        result.update({"images_per_s": round(multi, 1), "ms_per_image": round(1000 / multi, 2)})
    else:
        result.update({"images_per_s": round(single, 1), "ms_per_image": round(1000 / single, 2)})
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=400, help="images per measurement")
    ap.add_argument("--workers", type=int, default=2, help="worker processes (1 = in-process)")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--scanner", default="parcel_160kv")
    ap.add_argument("--mix", default="default")
    ap.add_argument("--out", default="benchmarks/results/simulator_speed.json")
    args = ap.parse_args()
    from atr.xray import GENERATOR_VERSION

    res = run(args.n, args.workers, args.scanner, args.mix, args.size)
    res.update({
        "image_size": [args.size, args.size], "workers": args.workers,
        "parallelism": "concurrent.futures.ProcessPoolExecutor" if args.workers > 1 else "none",
        "n_images": args.n, "scanner": args.scanner, "mix": args.mix,
        "generator": GENERATOR_VERSION, "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "python": platform.python_version(), "cpu_count": os.cpu_count(),
                    "load_avg_1m_at_end": round(os.getloadavg()[0], 2)},
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
    })
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
