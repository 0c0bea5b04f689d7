"""The training base's sources: `dataset.sources` in pipelines/params.yaml.

The DVC pipeline trains on a list of sources, each a simulator recipe or an imported
dataset folder under data/, with a weight:

    dataset:
      sources:
        - {name: synthetic, kind: simulator, weight: 1, count: 12000, image_size: 160,
           seed: 1, scanner: parcel_160kv, mix: default,
           splits: {train: 0.55, val: 0.05, calib: 0.25, test: 0.15},
           overrides: []}          # optional: more `atr data synth` overrides
        - {name: hums, kind: import, weight: 2, path: data/imports/hums}

`weight` is a whole number >= 0: a source's *train* rows are repeated `weight` times
(val/calib/test rows are always kept once, so weight 0 = a source used only to pick the
checkpoint, calibrate and test: e.g. a small real archive that calibrates the policy on
real images). Fractional weights are refused: repeating rows cannot express them, and
sub-sampling would silently drop labelled data.

The synthesize stage renders every simulator source into `<out>/<name>` (one stage, not a
DVC `foreach`: foreach cannot select the simulator items of a mixed list) and writes
`<out>/index.json`, the recipes it rendered, which the prepare stage checks against
params so a stale rendering is never trained on.

    python -m atr.data.sources pipelines/params.yaml artifacts/sources
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from atr.data.manifest_checks import SPLITS

KINDS = ("simulator", "import")
COMMON_KEYS = ("name", "kind", "weight")
RECIPE_KEYS = ("count", "image_size", "seed", "scanner", "mix", "splits")
OPTIONAL_KEYS = {"simulator": ("overrides",), "import": ()}
REQUIRED_KEYS = {"simulator": RECIPE_KEYS, "import": ("path",)}
INDEX_FILE = "index.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # a folder name and an origin tag


class SourceError(ValueError):
    """A `dataset.sources` entry is missing, ill-formed or unusable; names the entry."""


@dataclass(frozen=True)
class Source:
    name: str
    kind: str  # simulator | import
    weight: int
    where: str  # "pipelines/params.yaml dataset.sources[0] ('synthetic')", for messages
    recipe: dict[str, Any] = field(default_factory=dict)  # simulator: RECIPE_KEYS + overrides
    path: Path | None = None  # import: the dataset folder, relative to the repository root

    def describe(self) -> dict[str, Any]:
        """What dataset.json records about the source."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "weight": self.weight}
        if self.kind == "import":
            out["path"] = str(self.path)
        else:
            out["recipe"] = self.recipe
        return out


def load_sources(params_file: str | Path) -> list[Source]:
    """`dataset.sources` of a params file, checked."""
    path = Path(params_file)
    if not path.is_file():
        raise SourceError(f"{path}: params file not found (it lists dataset.sources)")
    try:
        params = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise SourceError(f"{path}: not valid YAML ({e})") from None
    dataset = params.get("dataset") if isinstance(params, Mapping) else None
    if not isinstance(dataset, Mapping) or "sources" not in dataset:
        raise SourceError(f"{path}: no dataset.sources (a list of simulator/import sources)")
    return parse_sources(dataset["sources"], str(path))


def parse_sources(raw: Any, origin: str = "params") -> list[Source]:
    """Check every entry; the first problem is raised with the entry it is in."""
    if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
        raise SourceError(f"{origin}: dataset.sources must be a non-empty list, got {raw!r}")
    sources = [_parse(item, f"{origin} dataset.sources[{i}]") for i, item in enumerate(raw)]
    seen: dict[str, str] = {}
    for s in sources:
        if s.name in seen:
            raise SourceError(f"{s.where}: name {s.name!r} already used by {seen[s.name]}")
        seen[s.name] = s.where
    return sources


def _parse(item: Any, where: str) -> Source:
    if not isinstance(item, Mapping):
        raise SourceError(f"{where}: expected a mapping {{name, kind, weight, ...}}, got {item!r}")
    name = item.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise SourceError(f"{where}: name {name!r} must be a folder-safe name "
                          "(letters, digits, '.', '_', '-')")
    where = f"{where} ({name!r})"
    kind = item.get("kind")
    if kind not in KINDS:
        raise SourceError(f"{where}: kind {kind!r} not one of {list(KINDS)}")
    allowed = {*COMMON_KEYS, *REQUIRED_KEYS[kind], *OPTIONAL_KEYS[kind]}
    unknown = sorted(set(item) - allowed)
    if unknown:
        raise SourceError(f"{where}: unknown key(s) {unknown} for a {kind} source "
                          f"(allowed: {sorted(allowed)})")
    missing = [k for k in ("weight", *REQUIRED_KEYS[kind]) if k not in item]
    if missing:
        raise SourceError(f"{where}: missing key(s) {missing} for a {kind} source")
    weight = item["weight"]
    if isinstance(weight, float) and weight.is_integer():
        weight = int(weight)
    if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
        raise SourceError(f"{where}: weight {item['weight']!r} must be a whole number >= 0 "
                          "(train rows are repeated weight times; fractions are not supported)")
    if kind == "import":
        if not isinstance(item["path"], str) or not item["path"]:
            raise SourceError(f"{where}: path {item['path']!r} must name a dataset folder")
        return Source(name, kind, weight, where, path=Path(item["path"]))
    return Source(name, kind, weight, where, recipe=_recipe(item, where))


def _recipe(item: Mapping[str, Any], where: str) -> dict[str, Any]:
    recipe = {k: item[k] for k in RECIPE_KEYS}
    for key in ("count", "image_size", "seed"):
        if isinstance(recipe[key], bool) or not isinstance(recipe[key], int) or recipe[key] < 0:
            raise SourceError(f"{where}: {key} {recipe[key]!r} must be a whole number >= 0")
    for key in ("scanner", "mix"):
        if not isinstance(recipe[key], str) or not recipe[key]:
            raise SourceError(f"{where}: {key} {recipe[key]!r} must name a conf/{key}/ profile")
    splits = recipe["splits"]
    if not isinstance(splits, Mapping) or not splits or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in splits.values()
    ):
        raise SourceError(f"{where}: splits {splits!r} must map split names to shares")
    unknown = sorted(set(map(str, splits)) - set(SPLITS))
    if unknown:
        raise SourceError(f"{where}: splits {unknown} unknown (expected {list(SPLITS)})")
    recipe["splits"] = {str(k): v for k, v in splits.items()}
    overrides = item.get("overrides", [])
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise SourceError(f"{where}: overrides {overrides!r} must be a list of key=value strings")
    recipe["overrides"] = list(overrides)
    return recipe


def synth_overrides(source: Source, out_dir: Path) -> list[str]:
    """`atr data synth` overrides of a simulator source (the old synthesize stage's cmd)."""
    r = source.recipe
    # every split named: Hydra merges a partial dict into conf/synth.yaml's shares
    splits = [f"synth.splits.{k}={r['splits'].get(k, 0)}" for k in SPLITS]
    return [f"synth.name={source.name}", f"synth.out={out_dir / source.name}",
            "synth.overwrite=true", "synth.save_raw=false", f"synth.count={r['count']}",
            f"synth.image_size={r['image_size']}", f"synth.seed={r['seed']}",
            f"scanner={r['scanner']}", f"mix={r['mix']}", *splits, *r["overrides"]]


def synthesize_sources(sources: list[Source], out_dir: str | Path) -> dict[str, Any]:
    """Render every simulator source into out_dir/<name>; write out_dir/index.json."""
    from atr.config import compose
    from atr.data.synth import synthesize

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    simulated = [s for s in sources if s.kind == "simulator"]
    names = {s.name for s in simulated}
    # a rendering of a source no longer in params must not linger beside the new ones
    for old in out.iterdir():
        if old.is_dir() and old.name not in names and (old / "dataset.json").is_file():
            shutil.rmtree(old)
    (out / INDEX_FILE).unlink(missing_ok=True)  # written last: present = complete
    rendered = {}
    for s in simulated:
        overrides = synth_overrides(s, out)
        try:
            cfg = compose("synth", overrides)
        except Exception as e:  # Hydra names the bad override (unknown scanner, key typo)
            raise SourceError(f"{s.where}: bad simulator recipe: {e}") from None
        rendered[s.name] = synthesize(cfg)
    index = {"sources": {s.name: s.recipe for s in simulated}}
    (out / INDEX_FILE).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return {"out": str(out), "simulated": rendered,
            "imports": [s.name for s in sources if s.kind == "import"]}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m atr.data.sources PARAMS_FILE OUT_DIR", file=sys.stderr)
        return 2
    try:
        summary = synthesize_sources(load_sources(args[0]), args[1])
    except (SourceError, ValueError, FileNotFoundError) as e:
        print(f"synthesize sources: error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
