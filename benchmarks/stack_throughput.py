"""Two `atr serve` replicas behind HAProxy, sharing PostgreSQL and the S3 images: throughput
and latency of the distributed stack (atr.stack) on this machine.

    .venv/bin/python benchmarks/stack_throughput.py \
        --out benchmarks/results/stack_throughput.json

The whole stack runs here on loopback (PostgreSQL 15, SeaweedFS, MLflow, two replicas,
HAProxy) with the load client (benchmarks/load_client.py, aiohttp, closed loop), so every
process shares the same cores: the figure is what this machine gives, not what two
replica machines would. For comparison the same load goes to one replica directly (no
balancer). Recorded with it: the load average before and after (other work on the machine
weighs on the figure) and the CPU seconds each part of the stack used during the run,
which says where the cores went.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from atr.config import compose  # noqa: E402
from atr.demo_service import UNLIMITED, free_port  # noqa: E402
from atr.line.metrics import latency_summary  # noqa: E402
from atr.stack.stack import Stack, StackSpec  # noqa: E402
from benchmarks import load_client  # noqa: E402

NAME = "atr-screening"
SCANNER = "parcel_160kv"


def served_package(work: Path, given: str | None) -> Path:
    """An evaluated package: `given`, else the demo's newest served one
    (runtime/serve/models), else the tests' tiny one. Its run.json names another MLflow
    store: dropped, sums restated."""
    from atr.package.checksums import package_checksums
    from atr.package.layout import MANIFEST_FILE

    found = sorted((REPO / "runtime" / "serve" / "models").glob("*/package/policy.json"),
                   key=lambda p: p.stat().st_mtime)
    package = work / "package"
    if given or found:
        shutil.copytree(Path(given) if given else found[-1].parent, package)
    else:
        sys.path.insert(0, str(REPO / "tests"))
        from helpers.packages import build_package

        build_package(package)
    (package / "run.json").unlink(missing_ok=True)
    manifest = json.loads((package / MANIFEST_FILE).read_text())
    manifest["sha256"] = {k: v for k, v in package_checksums(package).items()
                          if k != MANIFEST_FILE}
    manifest.pop("files", None)
    (package / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
    return package


def register(stack: Stack, package: Path, work: Path) -> str:
    import mlflow

    from atr.registry.approve import approve
    from atr.registry.register import register_package
    from atr.stack.tracking import logged_in

    url = stack.spec.mlflow_url
    overrides = [f"paths.root={work / 'client'}", f"paths.tracking_uri={url}",
                 f"paths.registry_uri={url}", "paths.mlflow_artifacts=null"]
    eval_dir = package / "artifacts" / "eval"
    cfg = compose("register", [*overrides, f"register.package_dir={package}",
                               f"register.eval_dir={eval_dir}"])
    # the stack's MLflow requires a login: the jobs' account registers, the reviewer
    # approves (the server writes the approval record the replicas require)
    with logged_in(stack.secrets, "service"):
        version = register_package(package, cfg).version
    with logged_in(stack.secrets, "reviewer"):
        approve(compose("approve", overrides), version=int(version))
    mlflow.set_tracking_uri(None)
    return str(version)


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds (user + system) of each process and all its descendants."""
    import psutil

    out = {}
    for name, pid in pids.items():
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        total = 0.0
        for p in procs:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        out[name] = total
    return out


def measure(url: str, spec: load_client.RequestSpec, seconds: float, concurrency: int,
            headers: dict[str, str], pids: dict[str, int]) -> dict[str, Any]:
    """A warm-up, a probe that sizes the run to about `seconds`, then the measured run."""
    load_client.run("aiohttp", url, spec, 4 * concurrency, rate=None,
                    concurrency=concurrency, headers=headers)
    probe, wall = load_client.run("aiohttp", url, spec, 8 * concurrency, rate=None,
                                  concurrency=concurrency, headers=headers)
    n = max(int(len(probe) / wall * seconds), 8 * concurrency)
    load_before, cpu_before = os.getloadavg(), cpu_seconds(pids)
    cpu_client_before = time.process_time()
    shots, wall = load_client.run("aiohttp", url, spec, n, rate=None, concurrency=concurrency,
                                  headers=headers)
    cpu_after = cpu_seconds(pids)
    ok = [s for s in shots if s.ok]
    cpu = {k: round(cpu_after[k] - cpu_before.get(k, 0.0), 2) for k in cpu_after}
    cpu["load_client"] = round(time.process_time() - cpu_client_before, 2)
    return {"requests": n, "ok": len(ok), "errors": [s.error for s in shots if not s.ok][:3],
            "concurrency": concurrency, "wall_s": round(wall, 2),
            "throughput_per_s": round(len(ok) / wall, 1),
            "latency_ms": latency_summary([s.latency_ms for s in ok]),
            "_latencies": [s.latency_ms for s in ok],
            "cpu_seconds": cpu, "cores_busy": round(sum(cpu.values()) / wall, 2),
            "load_avg_before": [round(x, 2) for x in load_before],
            "load_avg_after": [round(x, 2) for x in os.getloadavg()]}


def combined(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The rounds of one target as one figure (latencies pooled), each round kept too."""
    ok = sum(r["ok"] for r in runs)
    wall = sum(r["wall_s"] for r in runs)
    cpu = {k: round(sum(r["cpu_seconds"].get(k, 0.0) for r in runs), 2)
           for k in runs[0]["cpu_seconds"]}
    return {"ok": ok, "wall_s": round(wall, 2), "throughput_per_s": round(ok / wall, 1),
            "latency_ms": latency_summary([x for r in runs for x in r.pop("_latencies")]),
            "cpu_seconds": cpu, "cores_busy": round(sum(cpu.values()) / wall, 2),
            "rounds": runs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/stack_throughput.json"))
    ap.add_argument("--work", default=str(REPO / "runtime" / "bench-stack"))
    ap.add_argument("--seconds", type=float, default=20.0, help="per target, all rounds")
    ap.add_argument("--rounds", type=int, default=2)
    # conf/stack.yaml's default: two replicas on one 2-core machine, one ONNX thread each
    ap.add_argument("--serve", nargs="*", default=["serve.intra_op_threads=1"],
                    help="extra `atr serve` overrides for both replicas")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--package", default=None, help="an evaluated model package folder")
    args = ap.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    spec = StackSpec(dir=work / "stack", postgres_port=free_port(), s3_port=free_port(),
                     mlflow_port=free_port(), balancer_port=free_port(),
                     stats_port=free_port(), replica_ports=(free_port(), free_port()),
                     replica_overrides=(*UNLIMITED, *args.serve), scanners=(SCANNER,))
    stack = Stack(spec)
    started = time.perf_counter()
    try:
        stack.start()
        start_s = time.perf_counter() - started
        package = served_package(work, args.package)
        version = register(stack, package, work)
        for replica in stack.replicas:
            replica.wait("/ready", 120)
        from atr.line.parcels import render_parcels
        from atr.line.plan import Phase
        from atr.policy.taxonomy import default_taxonomy

        parcels = render_parcels([Phase(0, "bench", SCANNER, "default", 200)],
                                 default_taxonomy(), 256, 11, "bench", workers=2)
        pngs = [p.png for p in parcels]
        sent = itertools.count()

        def scan(i: int) -> tuple[str, bytes, str, dict[str, str]]:
            return ("/v1/scans", pngs[i % len(pngs)], "image/png",
                    {"item_id": f"bench-{next(sent)}", "scanner_id": SCANNER})

        headers = {"X-API-Key": stack.secrets["scanner_key"]}
        procs = {p["name"]: p["pid"] for p in stack.processes()}
        pg_pid = procs.pop("postgres")
        pids = {**procs, "postgres": pg_pid}
        # Alternated, so that the other work on the machine weighs on both alike.
        targets = {"through_haproxy_2_replicas": stack.balancer.url,
                   "one_replica_direct": stack.replicas[0].url}
        rounds: dict[str, list[dict[str, Any]]] = {k: [] for k in targets}
        for _ in range(args.rounds):
            for name, url in targets.items():
                rounds[name].append(measure(url, scan, args.seconds / args.rounds,
                                            args.concurrency, headers, pids))
        res = {name: combined(runs) for name, runs in rounds.items()}
        with_lb = res["through_haproxy_2_replicas"]
        out = {
            "date": datetime.now().isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                        "python": platform.python_version()},
            "model": {"version": version, "package": str(package),
                      "input_size": json.loads((package / "preprocess.json").read_text()).get(
                          "input_size")},
            "stack_start_s": round(start_s, 1), "serve_overrides": args.serve,
            "summary": {"items_per_s": with_lb["throughput_per_s"],
                        "p50_ms": with_lb["latency_ms"].get("p50"),
                        "p99_ms": with_lb["latency_ms"].get("p99"),
                        "one_replica_items_per_s": res["one_replica_direct"][
                            "throughput_per_s"]},
            **res,
        }
    finally:
        stack.stop()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out["summary"], indent=2))


if __name__ == "__main__":
    main()
