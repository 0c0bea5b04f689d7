"""Dual-energy scan pairs, class per folder: what line scanners export.

    <source>/<folder>/<stem><low_suffix><ext>     16-bit grey, low-energy image
    <source>/<folder>/<stem><high_suffix><ext>    16-bit grey, high-energy image, same size
    <source>/<folder>/<stem><color_suffix><ext>   optional: the scanner's pseudo-colour image
(or <source>/<split>/<folder>/... with split_dirs: true). HUMS, for one, writes
`20191228_103958_25.xif_lo.tif` / `.xif_hi.tif` / `.xif_colored.tif` (RGBA TIFF): stem
`20191228_103958_25.xif`, suffixes matched just before the extension.

Each scan becomes one item (id `<name>/<folder>/<stem>`) whose `raw` is the pair stacked
low above high (uint16 2HxW, pixel values exact: the simulator's raw contract) and whose
`image` is the colour file's original bytes, or else the low-energy file's (16-bit grey
decodes through the one preprocessing). The folder name is the class (class_map; a
folder mapped to null = no class: with complete_labels=threats, a benign folder's scans
get no_threat = 1).

Decisions, for real archives:
- a file whose name matches none of the three suffixes (HUMS has a stray
  `... .xif_colored - Kopya.tif`, Turkish for "copy") is not part of any scan: it is
  skipped, named in a warning and in dataset.json `ignored_files` (`unmatched: error`
  refuses instead). It cannot hide a damaged scan: a misnamed low or high leaves its
  partner without a pair, which is refused.
- a scan missing its low or high image (HUMS has one: a colour and a high file, no low)
  is refused, naming the file (`incomplete: skip` skips it, listed like the above).
- 8-bit, colour or 32-bit low/high data, a size mismatch inside a scan (colour included)
  and unreadable files are refused, naming the file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from atr.data.importers.base import (
    DatasetImportError,
    ImporterSettings,
    Parsed,
    Record,
    resolve_inside,
)

EXTENSIONS = (".tif", ".tiff", ".png")
GREY16_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}
ROLES = ("low", "high", "color")


def read_records(s: ImporterSettings) -> Parsed:
    root = s.source
    if not root.is_dir():
        raise DatasetImportError(
            f"{root}: not a folder (importer=dual_energy expects <source>/<class folder>/)"
        )
    suffixes = {r: str(s.options.get(f"{r}_suffix") or d)
                for r, d in zip(ROLES, ("_lo", "_hi", "_colored"), strict=True)}
    if len(set(suffixes.values())) < 3:
        raise DatasetImportError(f"importer: low/high/color suffixes must differ: {suffixes}")
    exts = tuple(str(e).lower() for e in s.options.get("extensions") or EXTENSIONS)
    policy = {k: str(s.options.get(k) or d) for k, d in (("incomplete", "error"),
                                                        ("unmatched", "ignore"))}
    if policy["incomplete"] not in ("error", "skip") or policy["unmatched"] not in (
        "error", "ignore"
    ):
        raise DatasetImportError(f"importer: incomplete must be error|skip and unmatched "
                                 f"error|ignore, got {policy}")
    parents = ([(d, d.name) for d in _subfolders(root)] if s.options.get("split_dirs")
               else [(root, None)])
    records: list[Record] = []
    ignored: list[str] = []
    for parent, split in parents:
        for folder in _class_folders(parent, s.options.get("folders"), root):
            scans = _scans(root, folder, suffixes, exts, policy["unmatched"], ignored)
            for stem, files in scans.items():
                rec = _record(root, folder, stem, files, suffixes, split, policy, ignored)
                if rec is not None:
                    records.append(rec)
    return Parsed(root, records, ignored=ignored)


def _subfolders(parent: Path) -> list[Path]:
    return sorted(d for d in parent.iterdir() if d.is_dir() and not d.name.startswith("."))


def _class_folders(parent: Path, wanted: list[str] | None, root: Path) -> list[Path]:
    """All class folders, or only the `folders` named (each must exist)."""
    found = _subfolders(parent)
    if not wanted:
        return found
    names = {d.name: d for d in found}
    missing = [w for w in wanted if str(w) not in names]
    if missing:
        raise DatasetImportError(
            f"importer.folders: {missing} not found in {parent} (has {sorted(names)})"
        )
    return [names[str(w)] for w in wanted]


def _scans(root: Path, folder: Path, suffixes: dict[str, str], exts: tuple[str, ...],
           unmatched: str, ignored: list[str]) -> dict[str, dict[str, Path]]:
    """stem -> {role: file}, from the image files directly in `folder`."""
    scans: dict[str, dict[str, Path]] = {}
    by_length = sorted(suffixes.items(), key=lambda kv: -len(kv[1]))  # longest match wins
    for f in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in exts):
        rel = f.relative_to(root).as_posix()
        base = f.name[: -len(f.suffix)]
        role = next((r for r, suf in by_length if base.endswith(suf)), None)
        if role is None:
            why = f"{rel}: name ends in none of {sorted(suffixes.values())} before the extension"
            if unmatched == "error":
                raise DatasetImportError(f"{why} (importer.unmatched=ignore skips such files)")
            ignored.append(why)
            continue
        stem = base[: -len(suffixes[role])]
        other = scans.setdefault(stem, {}).get(role)
        if other is not None:
            raise DatasetImportError(
                f"{rel}: a second {role} image of scan {stem!r} (also {other.name})"
            )
        scans[stem][role] = f
    return scans


def _record(root: Path, folder: Path, stem: str, files: dict[str, Path],
            suffixes: dict[str, str], split: str | None, policy: dict[str, str],
            ignored: list[str]) -> Record | None:
    key = f"{folder.relative_to(root).as_posix()}/{stem}"
    lacking = [r for r in ("low", "high") if r not in files]
    if lacking:
        have = ", ".join(sorted(p.name for p in files.values()))
        why = (f"{key}: {' and '.join(lacking)}-energy image ({stem}"
               f"{suffixes[lacking[0]]}.*) missing beside {have}")
        if policy["incomplete"] == "error":
            raise DatasetImportError(f"{why} (importer.incomplete=skip skips such scans)")
        ignored.append(why)
        return None
    paths = {r: resolve_inside(root, p.relative_to(root).as_posix(), key)
             for r, p in files.items()}
    size = _check_header(paths["low"], root, grey16=True)
    for role in ("high", "color"):
        if role in paths:
            other = _check_header(paths[role], root, grey16=role == "high")
            if other != size:
                raise DatasetImportError(
                    f"{_rel(paths[role], root)}: {other[0]}x{other[1]} px, but the low-energy "
                    f"image {paths['low'].name} is {size[0]}x{size[1]}"
                )
    image = paths.get("color", paths["low"])
    return Record(
        image=_rel(image, root),
        ref=f"{key} (folder {folder.name!r})",
        classes=[folder.name],
        split=split,
        key=key,
        meta={"energy_" + r: _rel(p, root) for r, p in paths.items()},
        raw=_pair_reader(paths["low"], paths["high"], root),
    )


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root.resolve()).as_posix()


def _check_header(path: Path, root: Path, *, grey16: bool) -> tuple[int, int]:
    """(width, height) from the header; low/high must be 16-bit grey."""
    try:
        with Image.open(path) as img:
            mode, size = img.mode, img.size
    except Exception as e:  # Pillow raises many types on damaged headers
        raise DatasetImportError(f"{_rel(path, root)}: unreadable image ({e})") from None
    if grey16 and mode not in GREY16_MODES:
        raise DatasetImportError(
            f"{_rel(path, root)}: mode {mode} is not 16-bit grey (a low/high energy image "
            "must hold the detector's 16-bit values; an 8-bit or colour export has lost them)"
        )
    return size


def _read16(path: Path, root: Path) -> np.ndarray:
    try:
        with Image.open(path) as img:
            return np.asarray(img).astype(np.uint16)  # big-endian TIFF -> native, exact
    except Exception as e:
        raise DatasetImportError(f"{_rel(path, root)}: unreadable image data ({e})") from None


def _pair_reader(low: Path, high: Path, root: Path) -> Callable[[], np.ndarray]:
    def read() -> np.ndarray:
        lo, hi = _read16(low, root), _read16(high, root)
        if lo.ndim != 2 or lo.shape != hi.shape:
            raise DatasetImportError(f"{_rel(high, root)}: shape {hi.shape} != low {lo.shape}")
        return np.vstack([lo, hi])

    return read
