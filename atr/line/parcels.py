"""Render and PNG-encode every parcel before the clock starts.

The simulator makes ~100-150 parcels/s on two cores; rendering on the fly would cap the
offered load at the simulator's speed and steal CPU from the service under test. So the
line renders everything first (in a process pool), keeps the PNG bytes and the truth,
and only then starts sending: the timings measure the service, not the client.
"""

from __future__ import annotations

import io
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from PIL import Image
from threadpoolctl import threadpool_limits

from atr.line.plan import Phase, item_ids_and_seeds
from atr.taxonomy import Taxonomy
from atr.xray import ClassMix, ScannerProfile, XraySimulator


@dataclass(frozen=True)
class Parcel:
    item_id: str
    scanner_id: str
    phase: int
    png: bytes
    labels: dict[str, int]  # every taxonomy class -> 0/1 (the simulator's truth)
    paper_only: int

    def threats(self, taxonomy: Taxonomy) -> list[str]:
        return [t for t in taxonomy.threats if self.labels.get(t)]


_sim: XraySimulator | None = None


def _init(profile: dict, taxonomy: dict, mix: dict, size: int) -> None:
    global _sim
    _sim = XraySimulator(ScannerProfile.from_dict(profile), Taxonomy.from_dict(taxonomy),
                         ClassMix.from_dict(mix), size)


def _init_worker(profile: dict, taxonomy: dict, mix: dict, size: int) -> None:
    threadpool_limits(1)  # one BLAS thread per process: small matmuls, two cores
    _init(profile, taxonomy, mix, size)


def _render_png(seed: int) -> tuple[bytes, dict[str, int], int]:
    assert _sim is not None
    item = _sim.render(seed)
    buf = io.BytesIO()
    Image.fromarray(item.rgb).save(buf, format="PNG")
    return buf.getvalue(), item.labels, int(item.paper_only)


def render_parcels(
    phases: list[Phase], taxonomy: Taxonomy, image_size: int, seed: int, prefix: str,
    workers: int = 2,
) -> list[Parcel]:
    """Every parcel of the plan, in line order."""
    ids = iter(item_ids_and_seeds(phases, seed, prefix))
    parcels: list[Parcel] = []
    for phase in phases:
        profile = phase.profile_dict()
        args = (profile, taxonomy.to_dict(), phase.mix_dict(), int(image_size))
        batch = [next(ids) for _ in range(phase.count)]
        seeds = [s for _, s in batch]
        if workers <= 1 or len(seeds) < 32:  # a pool's start-up costs more than it saves
            _init(*args)
            rendered = [_render_png(s) for s in seeds]
        else:
            with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=args) as pool:
                rendered = list(pool.map(_render_png, seeds, chunksize=8))
        for (item_id, _), (png, labels, paper_only) in zip(batch, rendered, strict=True):
            parcels.append(Parcel(item_id, str(profile["id"]), phase.index, png, labels,
                                  paper_only))
    return parcels
