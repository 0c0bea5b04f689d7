"""Writes a dataset folder all-or-nothing.

Everything is written into a temp folder beside the target; only a clean exit
validates the manifest and renames the folder into place. An exception (or a
bad row) deletes the temp folder: a crashed import never leaves a half dataset
that training could pick up.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from atr.data.label_completeness import META_KEY, row_completeness
from atr.data.manifest import (
    SPLITS,
    manifest_columns,
    validate_manifest,
    write_dataset_info,
    write_manifest,
)
from atr.policy.taxonomy import Taxonomy


def encode_png(array: np.ndarray) -> bytes:
    """Deterministic PNG: same array -> same bytes (fixed zlib level, no metadata chunks)."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=6, optimize=False)
    return buf.getvalue()


class DatasetWriter:
    """with DatasetWriter(out, taxonomy, source="synth") as w: w.add(...)"""

    def __init__(
        self,
        out_dir: str | Path,
        taxonomy: Taxonomy,
        source: str,
        batch_size: int = 1000,
        overwrite: bool = False,
        info: dict[str, Any] | None = None,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.out_dir = Path(out_dir).absolute()
        self.taxonomy, self.source = taxonomy, source
        self.batch_size, self.overwrite = batch_size, overwrite
        # provenance for dataset.json; no clock time, so a re-run yields identical bytes
        self.info = dict(info or {})
        self.tmp_dir: Path | None = None
        self._rows: list[dict[str, Any]] = []
        self._ids: set[str] = set()

    def __enter__(self) -> DatasetWriter:
        if self.out_dir.exists() and not self.overwrite:
            raise FileExistsError(f"{self.out_dir} exists (pass overwrite=True to replace it)")
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        # Same parent = same filesystem, so the final rename is atomic.
        self.tmp_dir = Path(
            tempfile.mkdtemp(prefix=f".{self.out_dir.name}.tmp-", dir=self.out_dir.parent)
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self.tmp_dir is not None
        try:
            if exc_type is None:
                self._finish()
        finally:
            if self.tmp_dir.exists():
                shutil.rmtree(self.tmp_dir, ignore_errors=True)

    def __len__(self) -> int:
        return len(self._rows)

    def add(
        self,
        item_id: str,
        image: bytes | np.ndarray,
        *,
        ext: str = ".png",
        raw: np.ndarray | None = None,
        split: str,
        scanner_id: str,
        labels: dict[str, int],
        paper_only: int | None = None,
        no_threat: int | None = None,
        boxes: list[dict[str, Any]] | None = None,
        meta: dict[str, Any] | None = None,
        width: int | None = None,
        height: int | None = None,
    ) -> str:
        """Store one image; returns its path relative to the dataset folder.

        `raw`: the dual-energy pair as uint16 2HxW, low-energy image on top (stored as a
        16-bit PNG, values exact). `paper_only` / `no_threat` None: derived from `labels`
        under the row's label completeness, `meta["complete_labels"]` if given, else
        complete (the simulator's and analysts' labels are); see label_completeness.py.
        """
        if self.tmp_dir is None:
            raise RuntimeError("DatasetWriter.add outside its `with` block")
        if item_id in self._ids:
            raise ValueError(f"item_id {item_id!r} added twice")
        if split not in SPLITS:
            raise ValueError(f"item {item_id!r}: split {split!r} not in {SPLITS}")
        unknown = sorted(set(labels) - set(self.taxonomy.names))
        if unknown:
            raise ValueError(f"item {item_id!r}: label(s) {unknown} not in the taxonomy")
        n = len(self._rows)
        batch = f"batch-{n // self.batch_size:05d}"
        (self.tmp_dir / batch).mkdir(exist_ok=True)
        if isinstance(image, np.ndarray):
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(
                    f"item {item_id!r}: image must be uint8 HxWx3, got {image.dtype} {image.shape}"
                )
            height, width = image.shape[:2]
            data, ext = encode_png(image), ".png"
        else:
            data = bytes(image)
            ext = ext.lower() if ext.startswith(".") else f".{ext.lower()}"
            if width is None or height is None:
                try:
                    with Image.open(io.BytesIO(data)) as img:  # header only, no decode
                        width, height = img.size
                except Exception as e:
                    raise ValueError(f"item {item_id!r}: image bytes unreadable ({e})") from e
        rel = f"{batch}/{n:06d}{ext}"
        (self.tmp_dir / rel).write_bytes(data)
        raw_rel = None
        if raw is not None:
            if raw.dtype != np.uint16 or raw.ndim != 2:
                raise ValueError(
                    f"item {item_id!r}: raw must be uint16 2HxW, got {raw.dtype} {raw.shape}"
                )
            raw_rel = f"{batch}/{n:06d}.raw.png"
            (self.tmp_dir / raw_rel).write_bytes(encode_png(raw))
        flags = {c: int(labels.get(c, 0)) for c in self.taxonomy.names}
        try:
            completeness = row_completeness(meta or {})
            completeness.check(self.taxonomy, where=f"meta[{META_KEY!r}]")
        except ValueError as e:
            raise ValueError(f"item {item_id!r}: {e}") from None
        if paper_only is None:
            paper_only = completeness.paper_only(flags, self.taxonomy)
        if no_threat is None:
            no_threat = completeness.no_threat(flags, self.taxonomy)
        self._ids.add(item_id)
        self._rows.append(
            {
                "image": rel,
                "raw": raw_rel,
                "item_id": item_id,
                "split": split,
                "scanner_id": scanner_id,
                "source": self.source,
                "width": int(width),
                "height": int(height),
                **flags,
                "paper_only": int(paper_only),
                "no_threat": int(no_threat),
                "boxes": json.dumps(boxes or [], separators=(",", ":")),
                "meta": json.dumps(meta or {}, sort_keys=True, separators=(",", ":")),
            }
        )
        return rel

    def _finish(self) -> None:
        assert self.tmp_dir is not None
        cols = manifest_columns(self.taxonomy)
        df = pd.DataFrame(self._rows, columns=cols)
        df = df.astype({c: "int8" for c in [*self.taxonomy.names, "paper_only", "no_threat"]})
        df = df.astype({"width": "int64", "height": "int64", "raw": object})
        df["raw"] = df["raw"].where(df["raw"].notna(), None)
        df = validate_manifest(
            df,
            self.taxonomy,
            source=str(self.out_dir / "manifest.parquet"),
            root=self.tmp_dir,
            check_files=True,
        )
        write_manifest(df, self.tmp_dir, self.taxonomy, check_files=False)
        counts = {s: int((df["split"] == s).sum()) for s in SPLITS}
        write_dataset_info(
            self.tmp_dir, self.taxonomy, self.source, **self.info, items=len(df), splits=counts
        )
        self._swap_in()

    def _swap_in(self) -> None:
        """Rename the finished temp folder into place; an old dataset is moved aside first
        and deleted only once the new one stands."""
        assert self.tmp_dir is not None
        aside = None
        if self.out_dir.exists():
            if not self.overwrite:  # appeared while we were writing
                raise FileExistsError(f"{self.out_dir} appeared during the write; not replaced")
            aside = self.out_dir.with_name(f".{self.out_dir.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(self.out_dir, aside)
        try:
            os.replace(self.tmp_dir, self.out_dir)
        except BaseException:
            if aside is not None:
                os.replace(aside, self.out_dir)
            raise
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
