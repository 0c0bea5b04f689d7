"""Render and PNG-encode every parcel before the clock starts.

The simulator makes ~100-150 parcels/s on two cores; rendering on the fly would cap the
offered load at the simulator's speed and steal CPU from the service under test. So the
line renders everything first (in a process pool), keeps the PNG bytes and the truth,
and only then starts sending: the timings measure the service, not the client.

What is sent is what the served model reads (its preprocess `input_column`): the
pseudo-colour PNG (`image`), or for a dual-energy model the raw pair, low-energy image
stacked above the high-energy one in one 16-bit PNG (`raw`, the simulator's `.raw.png`).
"""

from __future__ import annotations

import io
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial

import numpy as np
from PIL import Image
from threadpoolctl import threadpool_limits

from atr.line.plan import Phase, item_ids_and_seeds
from atr.policy.taxonomy import Taxonomy
from atr.xray import ClassMix, ScannerProfile, XraySimulator


@dataclass(frozen=True)
class Parcel:
    item_id: str
    scanner_id: str
    phase: int
    png: bytes  # the bytes sent: a PNG when simulated, the dataset's file when replayed
    labels: dict[str, int]  # every taxonomy class -> 0/1 (the simulator's truth)
    paper_only: int
    # Replayed items (atr/line/replay.py): the manifest's no_threat, the classes whose
    # labels are known (the row's complete classes and its positives), the file's type
    # and the dataset's item id. None: the simulator's complete truth.
    no_threat: int | None = None
    known: frozenset[str] | None = None
    content_type: str = "image/png"
    source_item: str | None = None
    # The simulator's objects ({"label", "xyxy"} in pixels, goods and threats): drawn in
    # the analyst view beside the model's boxes. Empty for replayed scans.
    boxes: tuple[dict, ...] = ()

    def threats(self, taxonomy: Taxonomy) -> list[str]:
        return [t for t in taxonomy.threats if self.labels.get(t)]

    def low_risk_truth(self, definition: str, taxonomy: Taxonomy) -> int:
        """1 when the item is known to be low risk under `definition` (paper_only or
        no_threat); 0 when it is not, or not known to be (fail-safe, as in manifests)."""
        if definition == "paper_only":
            return int(self.paper_only)
        if self.no_threat is not None:
            return int(self.no_threat)
        return taxonomy.no_threat(self.labels)

    def verdict_labels(self, taxonomy: Taxonomy) -> dict[str, int]:
        """What an inspection of this item reports: every class for a simulated parcel;
        for a replayed one only the classes its source labels completely and its positives
        (a verdict never claims what the archive does not know). The truth flags go with
        the classes when they are evidence (1), or when the classes settle them."""
        if self.known is None:
            return {**{k: int(v) for k, v in self.labels.items()},
                    "paper_only": int(self.paper_only)}
        out = {c: int(self.labels.get(c, 0)) for c in taxonomy.names if c in self.known}
        if self.paper_only:
            out["paper_only"] = 1
        if self.no_threat or any(out.get(t) for t in taxonomy.threats):
            out["no_threat"] = int(bool(self.no_threat))
        return out


_sim: XraySimulator | None = None


def _init(profile: dict, taxonomy: dict, mix: dict, size: int) -> None:
    global _sim
    _sim = XraySimulator(ScannerProfile.from_dict(profile), Taxonomy.from_dict(taxonomy),
                         ClassMix.from_dict(mix), size)


def _init_worker(profile: dict, taxonomy: dict, mix: dict, size: int) -> None:
    threadpool_limits(1)  # one BLAS thread per process: small matmuls, two cores
    _init(profile, taxonomy, mix, size)


def _render_png(seed: int, column: str = "image"
                ) -> tuple[bytes, dict[str, int], int, list[dict]]:
    assert _sim is not None
    item = _sim.render(seed)
    pixels = np.vstack([item.low, item.high]) if column == "raw" else item.rgb
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue(), item.labels, int(item.paper_only), item.boxes


def render_parcels(
    phases: list[Phase], taxonomy: Taxonomy, image_size: int, seed: int, prefix: str,
    workers: int = 2, column: str = "image",
) -> list[Parcel]:
    """Every parcel of the (simulated) plan, in line order; `column`: what the served
    model reads, `image` (pseudo-colour) or `raw` (the dual-energy pair)."""
    if column not in ("image", "raw"):
        raise ValueError(f"column {column!r}: the line sends `image` or `raw`")
    ids = iter(item_ids_and_seeds(phases, seed, prefix))
    parcels: list[Parcel] = []
    for phase in phases:
        batch = [next(ids) for _ in range(phase.count)]
        if phase.replay:
            continue  # its parcels come from atr.line.replay; the ids stay in line order
        profile = phase.profile_dict()
        args = (profile, taxonomy.to_dict(), phase.mix_dict(), int(image_size))
        seeds = [s for _, s in batch]
        if workers <= 1 or len(seeds) < 32:  # a pool's start-up costs more than it saves
            _init(*args)
            rendered = [_render_png(s, column) for s in seeds]
        else:
            with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=args) as pool:
                rendered = list(pool.map(partial(_render_png, column=column), seeds,
                                         chunksize=8))
        for (item_id, _), (png, labels, paper_only, boxes) in zip(batch, rendered,
                                                                  strict=True):
            parcels.append(Parcel(item_id, str(profile["id"]), phase.index, png, labels,
                                  paper_only, boxes=tuple(boxes)))
    return parcels
