"""Training throughput: the Lightning pipeline vs a plain PyTorch loop, and loader headroom.

    .venv/bin/python benchmarks/training_throughput.py                 # simulated set in a temp dir
    .venv/bin/python benchmarks/training_throughput.py --data data/synth/default --batches 30

Same model, data, loss and optimiser in every measurement (built by atr.train from the
`train` config, so the defaults are the shipped ones). Measures images/s of
  loader_only     iterating the train DataLoader (decode + augment + preprocess)
  compute_only    forward/backward/step on one cached batch (no loading)
  plain_pytorch   a hand-written loop over the loader
  lightning       Trainer.fit for the same number of batches (validation off)
and writes JSON to --out with the machine's load average before and after, since on a
shared CPU the figures move with whatever else runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import OmegaConf

from atr.config import compose
from atr.package.preprocess import PreprocessSpec
from atr.policy.taxonomy import Taxonomy
from atr.train import build_datamodule, build_model


def _rate(images: int, seconds: float) -> float:
    return round(images / seconds, 1) if seconds > 0 else 0.0


def loader_only(loader: Any, batches: int) -> float:
    it = iter(loader)
    next(it)  # worker start-up is not throughput
    n, t0 = 0, time.perf_counter()
    for _ in range(batches):
        x, _ = next(it, (None, None))
        if x is None:
            it = iter(loader)
            x, _ = next(it)
        n += len(x)
    return _rate(n, time.perf_counter() - t0)


def _step(model: Any, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    logits, _ = model(x)
    loss = model._loss(logits, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def compute_only(model: Any, batch: tuple[torch.Tensor, torch.Tensor], batches: int) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    _step(model, opt, *batch)
    t0 = time.perf_counter()
    for _ in range(batches):
        _step(model, opt, *batch)
    return _rate(batches * len(batch[0]), time.perf_counter() - t0)


def plain_pytorch(model: Any, loader: Any, batches: int) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    it = iter(loader)
    _step(model, opt, *next(it))
    n, t0 = 0, time.perf_counter()
    for _ in range(batches):
        batch = next(it, None)
        if batch is None:
            it = iter(loader)
            batch = next(it)
        _step(model, opt, *batch)
        n += len(batch[0])
    return _rate(n, time.perf_counter() - t0)


class AfterFirstBatch(L.Callback):
    """Times batches 2..n, as the plain loop does: worker start-up is not throughput."""

    def __init__(self) -> None:
        self.images, self.t0, self.t1 = 0, 0.0, 0.0

    def on_train_batch_end(self, trainer: Any, module: Any, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        now = time.perf_counter()
        if trainer.global_step <= 1:
            self.t0 = now
        else:
            self.images += len(batch[0])
            self.t1 = now


def lightning_fit(model: Any, datamodule: Any, batches: int) -> float:
    meter = AfterFirstBatch()
    trainer = L.Trainer(
        accelerator="cpu", devices=1, max_steps=batches + 1, limit_val_batches=0,
        logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, callbacks=[meter],
    )
    trainer.fit(model, datamodule=datamodule)
    return _rate(meter.images, meter.t1 - meter.t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="dataset folder (default: simulate one in a temp dir)")
    ap.add_argument("--count", type=int, default=400, help="items to simulate without --data")
    ap.add_argument("--image-size", type=int, default=160, help="simulated image size (px)")
    ap.add_argument("--batches", type=int, default=15, help="timed batches per measurement")
    ap.add_argument("--out", default="benchmarks/results/training_throughput.json")
    ap.add_argument("overrides", nargs="*", help="train config overrides, e.g. data.batch_size=32")
    args = ap.parse_args()

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if not data:
            data = str(Path(tmp) / "ds")
            # In a child process: simulating in this one left it ~35 % slower at training
            # (measured: 220 vs 345 images/s), which would charge the simulator to the model.
            subprocess.run([sys.executable, "-c", (
                "from pathlib import Path; from atr.data.synth import make_dataset; "
                f"make_dataset(Path({data!r}), count={args.count}, "
                f"image_size={args.image_size}, seed=0)")], check=True)
        cfg = compose("train", [f"data.dir={Path(data).resolve()}", *args.overrides])
        L.seed_everything(int(cfg.seed))
        taxonomy = Taxonomy.from_dict(OmegaConf.to_container(cfg.taxonomy, resolve=True))
        spec = PreprocessSpec(**OmegaConf.to_container(cfg.model.preprocess, resolve=True))
        dm = build_datamodule(cfg, taxonomy, spec)
        dm.setup("fit")
        pos_weight = dm.pos_weight()
        loader = dm.train_dataloader()
        results = {
            "loader_only": loader_only(loader, args.batches),
            "compute_only": compute_only(build_model(cfg, taxonomy, pos_weight),
                                         next(iter(loader)), args.batches),
            "plain_pytorch": plain_pytorch(build_model(cfg, taxonomy, pos_weight),
                                           loader, args.batches),
            "lightning": lightning_fit(build_model(cfg, taxonomy, pos_weight), dm, args.batches),
        }
    report = {
        "images_per_s": results,
        "lightning_vs_plain": round(results["lightning"] / max(results["plain_pytorch"], 1e-9), 3),
        "loader_headroom": round(results["loader_only"] / max(results["plain_pytorch"], 1e-9), 2),
        "setup": {
            "backbone": cfg.model.backbone, "input_size": spec.input_size,
            "batch_size": int(cfg.data.batch_size), "num_workers": int(cfg.data.num_workers),
            "cache_mb": float(cfg.data.cache_mb),  # decoded images kept after the first pass
            "channels_last": bool(cfg.model.channels_last),
            "timed_batches": args.batches, "dataset": data if args.data else
            f"simulated {args.count} items at {args.image_size} px",
            "augment": "default" if OmegaConf.to_container(cfg.augment).get("enabled", True)
            else "none",
        },
        "machine": {
            "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "loadavg_before": [round(v, 2) for v in load_before],
            "loadavg_after": [round(v, 2) for v in os.getloadavg()],
        },
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
