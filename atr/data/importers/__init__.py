"""Importers of real dataset formats into ATR dataset folders.

`import_dataset(compose("import", ["importer=coco", "importer.source=..."]))`
reads the source with the format module named by `importer.format`, checks
every image and label, and writes a dataset folder all-or-nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from atr.data.importers import coco, dual_energy, folder, labelstudio, sixray, voc, yolo
from atr.data.importers.base import DatasetImportError, ImporterSettings, Parsed, write_import
from atr.policy.taxonomy import Taxonomy, default_taxonomy

FORMATS: dict[str, Callable[[ImporterSettings], Parsed]] = {
    "folder": folder.read_records,
    "sixray": sixray.read_records,
    "coco": coco.read_records,
    "yolo": yolo.read_records,
    "voc": voc.read_records,
    "labelstudio": labelstudio.read_records,
    "dual_energy": dual_energy.read_records,
}

__all__ = ["FORMATS", "DatasetImportError", "ImporterSettings", "import_dataset"]


def import_dataset(cfg: DictConfig | Mapping[str, Any]) -> Path:
    """Import `cfg.importer.source` into `cfg.importer.out`; returns the dataset folder.

    `cfg` is the composed `conf/import.yaml` (or a dict of the same shape: `importer`,
    optional `taxonomy` and `paths`).
    """
    raw = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    assert isinstance(raw, dict)
    icfg = raw.get("importer")
    if not isinstance(icfg, Mapping):
        raise DatasetImportError("config has no 'importer' section")
    fmt = str(icfg.get("format") or "")
    if fmt not in FORMATS:
        raise DatasetImportError(f"importer.format {fmt!r} not one of {sorted(FORMATS)}")
    taxonomy = Taxonomy.from_dict(raw["taxonomy"]) if raw.get("taxonomy") else default_taxonomy()
    settings = ImporterSettings.from_config(icfg, (raw.get("paths") or {}).get("data_dir"))
    return write_import(FORMATS[fmt](settings), settings, taxonomy)
