"""The dataset manifest: its schema, and the only code that reads or writes it.

A dataset is a folder with `dataset.json`, `manifest.parquet` and images in
batch subfolders (docs/CONTRACTS.md). Every read and every write is checked,
so a bad row is caught where it enters, with its file, row and field named.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa

from atr.data.manifest_checks import (
    SPLITS,
    cross_field_problems,
    describe_failures,
    missing_files,
)
from atr.data.manifest_upgrade import UPGRADABLE, upgrade_manifest
from atr.policy.taxonomy import LOW_RISK_DEFINITIONS, Taxonomy

MANIFEST_FILE = "manifest.parquet"
DATASET_FILE = "dataset.json"
# 2: the `no_threat` truth column (after `paper_only`) and `meta["complete_labels"]`.
# Version 1 folders (e.g. frontline batches of an existing install) are upgraded when read,
# in memory only: DVC-tracked files keep their bytes (atr/data/manifest_upgrade.py).
SCHEMA_VERSION = 2
HEAD_COLUMNS = ("image", "raw", "item_id", "split", "scanner_id", "source", "width", "height")
TAIL_COLUMNS = ("paper_only", "no_threat", "boxes", "meta")
MAX_REPORTED = 20  # problems listed in one error; the rest are counted


class ManifestError(ValueError):
    """A manifest or dataset folder breaks the contract; `problems` lists each finding."""

    def __init__(self, source: str, problems: list[str]):
        self.source, self.problems = source, problems
        lines = [f"{source}: {p}" for p in problems[:MAX_REPORTED]]
        if len(problems) > MAX_REPORTED:
            lines.append(f"{source}: ... and {len(problems) - MAX_REPORTED} more problem(s)")
        super().__init__("\n".join(lines))


def manifest_columns(taxonomy: Taxonomy) -> list[str]:
    return [*HEAD_COLUMNS, *taxonomy.names, *TAIL_COLUMNS]


def manifest_schema(taxonomy: Taxonomy) -> pa.DataFrameSchema:
    """Column types and per-value rules; cross-field rules live in `validate_manifest`."""
    text = [pa.Check.str_length(min_value=1)]
    flag = [pa.Check.isin([0, 1])]
    cols: dict[str, pa.Column] = {
        "image": pa.Column(str, text),
        "raw": pa.Column(str, text, nullable=True),
        "item_id": pa.Column(str, text),
        "split": pa.Column(str, pa.Check.isin(list(SPLITS))),
        "scanner_id": pa.Column(str, text),
        "source": pa.Column(str, text),
        "width": pa.Column("int64", pa.Check.gt(0)),
        "height": pa.Column("int64", pa.Check.gt(0)),
    }
    cols.update({name: pa.Column("int8", flag) for name in taxonomy.names})
    cols["paper_only"] = pa.Column("int8", flag)
    cols["no_threat"] = pa.Column("int8", flag)
    cols["boxes"] = pa.Column(str)
    cols["meta"] = pa.Column(str)
    return pa.DataFrameSchema(cols, strict=True, ordered=True, name="atr-manifest")


def validate_manifest(
    df: pd.DataFrame,
    taxonomy: Taxonomy,
    *,
    source: str = "<manifest>",
    root: str | Path | None = None,
    check_files: bool = False,
) -> pd.DataFrame:
    """Check `df` against the contract; return it with canonical dtypes and a 0..n-1 index.

    Raises ManifestError naming `source`, the 1-based row, its item_id and the field.
    """
    expected = manifest_columns(taxonomy)
    if list(df.columns) != expected:
        missing = [c for c in expected if c not in df.columns]
        extra = [c for c in df.columns if c not in expected]
        detail = f"missing {missing}" if missing else ""
        detail += f"{'; ' if detail else ''}unexpected {extra}" if extra else ""
        raise ManifestError(source, [f"columns: {detail or 'wrong order'}; expected {expected}"])
    df = _canonical_dtypes(df.reset_index(drop=True))
    try:
        manifest_schema(taxonomy).validate(df, lazy=True)
    except pa.errors.SchemaErrors as e:
        raise ManifestError(source, describe_failures(e.failure_cases, df)) from None
    problems = cross_field_problems(df, taxonomy)
    if check_files and not problems:
        problems = missing_files(df, Path(root if root is not None else "."))
    if problems:
        raise ManifestError(source, problems)
    return df


def _canonical_dtypes(df: pd.DataFrame) -> pd.DataFrame:
    """Narrow any integer column to the contract's width when the values allow it, so
    callers may build frames with plain ints; out-of-range values are left for the
    schema to report by row."""
    df = df.copy()
    for col in df.columns:
        s = df[col]
        if not (pd.api.types.is_integer_dtype(s) or pd.api.types.is_bool_dtype(s)):
            continue
        if col in ("width", "height"):
            df[col] = s.astype("int64")
        elif col not in HEAD_COLUMNS and (s.empty or (s.min() >= -128 and s.max() <= 127)):
            df[col] = s.astype("int8")
    return df


@dataclass
class Dataset:
    root: Path
    manifest: pd.DataFrame
    taxonomy: Taxonomy
    info: dict[str, Any] = field(default_factory=dict)

    def split(self, name: str) -> pd.DataFrame:
        if name not in SPLITS:
            raise ValueError(f"split {name!r} not in {SPLITS}")
        return self.manifest[self.manifest["split"] == name]

    def image_paths(self, rows: pd.DataFrame | None = None) -> list[Path]:
        rows = self.manifest if rows is None else rows
        return [self.root / p for p in rows["image"]]

    def targets(
        self, rows: pd.DataFrame | None = None, outputs: Sequence[str] | None = None
    ) -> np.ndarray:
        """float32 N x len(outputs): the screening model's training targets.

        `outputs` is the model's output list (its taxonomy's `model_outputs`, which
        names the low-risk definition it is trained for); the default is this dataset's
        stored taxonomy, whose low-risk definition may not be the model's.
        """
        rows = self.manifest if rows is None else rows
        outputs = list(self.taxonomy.model_outputs if outputs is None else outputs)
        known = {*LOW_RISK_DEFINITIONS, *self.taxonomy.names}
        unknown = [o for o in outputs if o not in known]
        if unknown:
            raise ValueError(
                f"{self.root}: model output(s) {unknown} are not manifest truth columns "
                f"({', '.join(sorted(known))})"
            )
        return rows[outputs].to_numpy(np.float32)


def read_dataset(path: str | Path, taxonomy: Taxonomy | None = None) -> Dataset:
    """Read and fully check a dataset folder (or its manifest file), files included.

    With `taxonomy`, also refuse a dataset labelled with different classes."""
    root = Path(path)
    if root.name == MANIFEST_FILE:
        root = root.parent
    info_path, manifest_path = root / DATASET_FILE, root / MANIFEST_FILE
    for p in (info_path, manifest_path):
        if not p.is_file():
            raise ManifestError(str(p), ["file not found (not an ATR dataset folder?)"])
    try:
        info = json.loads(info_path.read_text())
        stored = Taxonomy.from_dict(info["taxonomy"])
        version = info["schema_version"]
    except (ValueError, KeyError, TypeError) as e:
        raise ManifestError(str(info_path), [f"unreadable dataset description ({e})"]) from e
    if version not in (*UPGRADABLE, SCHEMA_VERSION):
        raise ManifestError(
            str(info_path),
            [f"schema_version {version!r} is not one this ATR reads ({UPGRADABLE[0]}.."
             f"{SCHEMA_VERSION}): written by a newer ATR? upgrade ATR (pip install -e .)"],
        )
    if taxonomy is not None and taxonomy.names != stored.names:
        raise ManifestError(
            str(info_path),
            [f"taxonomy classes {stored.names} differ from expected {taxonomy.names}"],
        )
    try:
        df = pd.read_parquet(manifest_path)
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise ManifestError(str(manifest_path), [f"unreadable Parquet ({e})"]) from e
    if version != SCHEMA_VERSION:
        try:
            df = upgrade_manifest(df, version, stored)
        except ValueError as e:
            raise ManifestError(str(manifest_path), [str(e)]) from None
        info = {**info, "upgraded_from": version}
    df = validate_manifest(df, stored, source=str(manifest_path), root=root, check_files=True)
    return Dataset(root=root, manifest=df, taxonomy=stored, info=info)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write to a temp file in the same folder, then os.replace: readers see old or new."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_manifest(
    df: pd.DataFrame,
    path: str | Path,
    taxonomy: Taxonomy,
    *,
    check_files: bool = True,
) -> Path:
    """Validate and atomically write `df` to `path` (a manifest file or a dataset folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_FILE
    df = validate_manifest(
        df, taxonomy, source=str(path), root=path.parent, check_files=check_files
    )
    return atomic_write_bytes(path, df.to_parquet(index=False))


def write_dataset_info(root: str | Path, taxonomy: Taxonomy, source: str, **extra: Any) -> Path:
    info = {
        "schema_version": SCHEMA_VERSION,
        "taxonomy": taxonomy.to_dict(),
        "source": source,
        **extra,
    }
    return atomic_write_bytes(
        Path(root) / DATASET_FILE, (json.dumps(info, indent=2) + "\n").encode()
    )
