"""A new scanner's single-energy scans -> a dataset of crops the line can replay.

The only other real scanner images allowed here are the NIST ANSI N42.55 test-object
scans (five 16-bit single-energy TIFFs, ~1750 x 1040; public repository
code-gray57/x-ray-performance-analysis, folder example_images/). Five images are too few
for a monitor window, so each is cut into square crops on a regular grid (`crop` px,
every `stride` px, the last row/column flush with the edge): a few hundred items, each
an image region the scanner really produced, at its own pixel pitch (no resampling).

A single-energy scanner has one detector layer: a dual-energy model gets each crop as
a stacked pair with low = high (the raw column, 16-bit PNG, 2H x W), i.e. no material
information at all, which is what such a scanner gives. The files `*_blank.tif` are
not flat fields of the scans (other sizes) and are skipped; no flat-field correction is
applied: the dual-energy decode measures each scan's air level itself.

Labels: the test objects hold no threat, but nothing in the source says so per image, so
the crops claim nothing (`complete_labels: false`: paper_only = no_threat = 0, unknown).
Nothing is copied into the repository: the dataset goes to the demo's runtime folder.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

import numpy as np
from PIL import Image

from atr.data.dataset_writer import DatasetWriter
from atr.policy.taxonomy import Taxonomy

GREY16 = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


def grid(length: int, crop: int, stride: int) -> list[int]:
    """Start offsets covering [0, length): every `stride`, the last flush with the end."""
    if length <= crop:
        return [0]
    starts = list(range(0, length - crop + 1, stride))
    if starts[-1] != length - crop:
        starts.append(length - crop)
    return starts


def scan_files(source: Path, pattern: str, exclude: str) -> list[Path]:
    if not source.is_dir():
        raise FileNotFoundError(f"new scanner folder {source}: not a directory")
    files = sorted(p for p in source.iterdir() if p.is_file()
                   and fnmatch.fnmatch(p.name, pattern) and not fnmatch.fnmatch(p.name, exclude))
    if not files:
        raise FileNotFoundError(f"new scanner folder {source}: no file matches {pattern!r} "
                                f"(excluding {exclude!r})")
    return files


def read_single_energy(path: Path) -> np.ndarray:
    """A 16-bit grey scan as uint16 HxW; anything else is refused naming the file."""
    try:
        with Image.open(path) as img:
            if img.mode not in GREY16 or getattr(img, "n_frames", 1) != 1:
                raise ValueError(f"{path}: mode {img.mode}, {getattr(img, 'n_frames', 1)} "
                                 "page(s); a single-energy scan is one 16-bit grey image")
            array = np.asarray(img)
    except (OSError, SyntaxError) as e:
        raise ValueError(f"{path}: unreadable image ({e})") from e
    if array.min() < 0 or array.max() > 65535:
        raise ValueError(f"{path}: values outside 0..65535")
    return array.astype(np.uint16)


def display(tile: np.ndarray) -> np.ndarray:
    """8-bit RGB for people (the `image` column): the 16-bit counts scaled to the tile's
    range. Models never read it (a dual-energy model reads `raw`)."""
    lo, hi = np.percentile(tile, [0.5, 99.5])
    grey = np.clip((tile.astype(np.float32) - lo) / max(hi - lo, 1.0), 0, 1) * 255
    return np.repeat(grey.astype(np.uint8)[:, :, None], 3, axis=2)


def write_crops(source: str | Path, out: str | Path, taxonomy: Taxonomy, *, name: str,
                scanner_id: str, crop: int = 600, stride: int = 150,
                pattern: str = "*.tif", exclude: str = "*_blank.tif") -> Path:
    """Write the crop dataset (split `test`, every crop a replayable item) to `out`."""
    if crop < 32 or stride < 1:
        raise ValueError(f"crop {crop} must be >= 32 px and stride {stride} >= 1")
    files = scan_files(Path(source), pattern, exclude)
    scans = [(f, read_single_energy(f)) for f in files]  # all checked before writing
    zeros = dict.fromkeys(taxonomy.names, 0)
    info = {"crops": {"source": str(source), "files": [f.name for f in files], "crop": crop,
                      "stride": stride, "single_energy": "raw pair = the one layer twice "
                      "(low = high)"}}
    with DatasetWriter(out, taxonomy, source=f"single_energy_crops:{name}", info=info) as w:
        for path, scan in scans:
            height, width = scan.shape
            for y in grid(height, crop, stride):
                for x in grid(width, crop, stride):
                    tile = scan[y:y + crop, x:x + crop]
                    w.add(f"{name}/{path.stem}/y{y:04d}x{x:04d}", display(tile),
                          raw=np.vstack([tile, tile]), split="test", scanner_id=scanner_id,
                          labels=zeros,
                          meta={"complete_labels": False, "origin": path.name,
                                "crop_xywh": [x, y, tile.shape[1], tile.shape[0]]})
    return Path(out)
