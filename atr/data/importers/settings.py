"""The `importer` section of conf/import.yaml, checked once, for every format.

Split from base.py (which checks records and writes); format modules read their own
keys from `ImporterSettings.options`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atr.data.label_completeness import LabelCompleteness
from atr.data.manifest import SPLITS
from atr.data.splits import DEFAULT_FRACTIONS, check_fractions

# Source split names seen in the wild -> ATR's.
DEFAULT_SPLIT_MAP = {s: s for s in SPLITS} | {
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "trainval": "train",
    "calibration": "calib",
}


class DatasetImportError(ValueError):
    """A source dataset cannot be imported; the message names the file and line/annotation."""


@dataclass
class ImporterSettings:
    format: str
    name: str
    source: Path
    out: Path
    # The effective map: the format's `default_class_map` updated by the user's `class_map`.
    class_map: dict[str, str | None]
    unknown_class: str  # "error" | "ignore"
    scanner_id: str
    complete_labels: LabelCompleteness
    splits: dict[str, float]
    seed: int
    split_map: dict[str, str]
    overwrite: bool
    progress: bool  # progress bars on stderr (shown only when stderr is a terminal)
    options: dict[str, Any]  # the whole importer section, for format-specific keys

    @classmethod
    def from_config(cls, icfg: Mapping[str, Any], data_dir: str | Path | None) -> ImporterSettings:
        fmt, name = str(icfg.get("format") or ""), str(icfg.get("name") or icfg.get("format"))
        if not icfg.get("source"):
            raise DatasetImportError(
                f"importer.source is not set (the {fmt or '?'} dataset to import)"
            )
        out = icfg.get("out") or Path(data_dir or "data") / "imports" / name
        unknown = str(icfg.get("unknown_class") or "error")
        if unknown not in ("error", "ignore"):
            raise DatasetImportError(f"importer.unknown_class {unknown!r} not 'error' or 'ignore'")
        try:
            fractions = check_fractions(icfg.get("splits") or DEFAULT_FRACTIONS)
            complete = LabelCompleteness.parse(icfg.get("complete_labels", False))
        except ValueError as e:
            raise DatasetImportError(f"importer: {e}") from None
        split_map = DEFAULT_SPLIT_MAP | {
            str(k): str(v) for k, v in (icfg.get("split_map") or {}).items()
        }
        bad = {k: v for k, v in split_map.items() if v not in SPLITS}
        if bad:
            raise DatasetImportError(f"importer.split_map: targets {bad} not in {SPLITS}")
        return cls(
            format=fmt,
            name=name,
            source=Path(str(icfg["source"])).expanduser(),
            out=Path(str(out)).expanduser(),
            class_map=_class_map(icfg),
            unknown_class=unknown,
            scanner_id=str(icfg.get("scanner_id") or "unknown"),
            complete_labels=complete,
            splits=fractions,
            seed=int(icfg.get("seed", 0)),
            split_map=split_map,
            overwrite=bool(icfg.get("overwrite", False)),
            progress=bool(icfg.get("progress", True)),
            options=dict(icfg),
        )

    def path_option(self, key: str, default: Path) -> Path:
        """A format-specific folder/file option; relative paths start at the source's folder."""
        value = self.options.get(key)
        if not value:
            return default
        p = Path(str(value)).expanduser()
        base = self.source if self.source.is_dir() else self.source.parent
        return p if p.is_absolute() else base / p


def _class_map(icfg: Mapping[str, Any]) -> dict[str, str | None]:
    """`default_class_map` (a format's own, e.g. SIXray's) updated by `class_map`.

    Two keys because Hydra cannot replace a dict given in a config file from the command
    line (it merges, and refuses new keys): `class_map` is null in every config file, so
    `importer.class_map='{Gun: firearm}'` always works; `importer.default_class_map=null`
    drops a format's defaults.
    """
    merged: dict[str, str | None] = {}
    for key in ("default_class_map", "class_map"):
        value = icfg.get(key) or {}
        if not isinstance(value, Mapping):
            raise DatasetImportError(
                f"importer.{key}: expected a mapping like '{{Gun: firearm, Baton: null}}', "
                f"got {value!r}"
            )
        merged |= {str(k): (None if v is None else str(v)) for k, v in value.items()}
    return merged
