"""`atr data synth`: write a simulated dataset (images in batch folders + manifest)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf
from threadpoolctl import threadpool_limits

from atr.data.dataset_writer import DatasetWriter
from atr.policy.taxonomy import Taxonomy
from atr.xray import GENERATOR_VERSION, ClassMix, ScannerProfile, SimulatedItem, XraySimulator

log = logging.getLogger(__name__)

_worker_sim: XraySimulator | None = None


def item_seed(seed: int, index: int) -> int:
    """Independent per-item seed: items can be rendered in any order, in any process."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def split_plan(count: int, fractions: Mapping[str, float], seed: int) -> list[str]:
    """Exact split sizes, shuffled with the dataset seed (largest remainder rounding)."""
    names = list(fractions)
    weights = np.array([float(fractions[n]) for n in names])
    if count < 0 or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"synth.splits {dict(fractions)}: need non-negative shares summing > 0")
    raw = weights / weights.sum() * count
    sizes = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - sizes))[: count - sizes.sum()]:
        sizes[i] += 1
    plan = np.repeat(np.array(names, dtype=object), sizes)
    np.random.default_rng([seed, 0x5EED]).shuffle(plan)
    return [str(s) for s in plan]


def _init_worker(profile: dict, taxonomy: dict, mix: dict, size: int) -> None:
    global _worker_sim
    # one BLAS thread per simulator process: the small per-image matmuls get ~4x slower
    # when the BLAS pools of several processes fight over two cores
    threadpool_limits(1)
    _worker_sim = XraySimulator(
        ScannerProfile.from_dict(profile),
        Taxonomy.from_dict(taxonomy),
        ClassMix.from_dict(mix),
        size,
    )


def _render(seed: int) -> SimulatedItem:
    assert _worker_sim is not None
    return _worker_sim.render(seed)


def render_items(
    profile: dict, taxonomy: Taxonomy, mix: dict, size: int, seeds: list[int], workers: int
) -> Iterator[SimulatedItem]:
    """Render in order; with workers > 1 the same items come out of a process pool."""
    args = (profile, taxonomy.to_dict(), mix, size)
    if workers <= 1 or len(seeds) < 64:
        _init_worker(*args)
        yield from (_render(s) for s in seeds)
        return
    with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=args) as pool:
        yield from pool.map(_render, seeds, chunksize=16)


def synthesize(cfg: DictConfig) -> dict[str, Any]:
    s = cfg.synth
    taxonomy = Taxonomy.from_dict(OmegaConf.to_container(cfg.taxonomy, resolve=True))
    profile = OmegaConf.to_container(cfg.scanner, resolve=True)
    mix = OmegaConf.to_container(cfg.mix, resolve=True)
    splits = split_plan(int(s.count), s.splits, int(s.seed))
    seeds = [item_seed(int(s.seed), i) for i in range(int(s.count))]
    scanner_id = str(profile["id"])
    out = Path(s.out)
    counts = {"paper_only": 0, "threat": 0}
    info = {
        "generator": GENERATOR_VERSION,
        "seed": int(s.seed),
        "scanner": scanner_id,
        "mix": mix.get("name", "custom"),
        "image_size": int(s.image_size),
    }
    with DatasetWriter(
        out, taxonomy, "synth", int(s.batch_size), bool(s.overwrite), info=info
    ) as writer:
        items = render_items(profile, taxonomy, mix, int(s.image_size), seeds, int(s.workers))
        for i, (item, split) in enumerate(zip(items, splits, strict=True)):
            counts["paper_only"] += item.paper_only
            counts["threat"] += int(any(item.labels[t] for t in taxonomy.threats))
            writer.add(
                f"{scanner_id}-s{s.seed}-{i:06d}",
                item.rgb,
                raw=np.vstack([item.low, item.high]) if s.save_raw else None,
                split=split,
                scanner_id=scanner_id,
                labels=item.labels,
                paper_only=item.paper_only,
                boxes=item.boxes,
                meta={**item.meta, "mix": mix.get("name", "custom"), "index": i},
            )
    log.info("wrote %d items to %s", s.count, out)
    return {"dataset": str(out), "count": int(s.count), "scanner": scanner_id, **counts}


def make_dataset(
    out_dir: str | Path,
    *,
    count: int,
    image_size: int = 64,
    seed: int = 0,
    scanner: str = "parcel_160kv",
    mix: str = "default",
    splits: Mapping[str, float] | None = None,
    workers: int = 1,
    save_raw: bool = False,
    extra: list[str] | None = None,
) -> Path:
    """Programmatic `atr data synth` for tests and notebooks."""
    from atr.config import compose

    overrides = [
        f"synth.out={Path(out_dir).resolve()}",
        f"synth.count={count}",
        f"synth.image_size={image_size}",
        f"synth.seed={seed}",
        f"scanner={scanner}",
        f"mix={mix}",
        f"synth.workers={workers}",
        f"synth.save_raw={str(save_raw).lower()}",
        *(extra or []),
    ]
    if splits is not None:
        # name every split: Hydra merges a dict override into the default shares
        shares = {name: splits.get(name, 0) for name in ("train", "val", "calib", "test")}
        overrides.append("synth.splits={" + ",".join(f"{k}:{v}" for k, v in shares.items()) + "}")
    synthesize(compose("synth", overrides))
    return Path(out_dir)
