"""Row-level checks of a manifest: cross-field rules, paths, boxes, files on disk.

Split from atr/data/manifest.py (which owns the schema and I/O); every message names the
1-based row, the item_id and the field.
"""

from __future__ import annotations

import json
import math
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from atr.data.label_completeness import META_KEY, row_completeness
from atr.policy.taxonomy import Taxonomy

SPLITS = ("train", "val", "calib", "test")


def _row(df: pd.DataFrame, i: int) -> str:
    return f"row {i + 1} (item_id {df['item_id'].iat[i]!r})"


def describe_failures(cases: pd.DataFrame, df: pd.DataFrame) -> list[str]:
    out = []
    for case in cases.itertuples(index=False):
        col, check, value, idx = case.column, str(case.check), case.failure_case, case.index
        if idx is None or (isinstance(idx, float) and math.isnan(idx)):
            out.append(f"field {col!r}: column {check} failed (found {value})")
            continue
        where = f"{_row(df, int(idx))}: field {col!r}"
        if check.startswith("isin"):
            allowed = SPLITS if col == "split" else (0, 1)
            out.append(f"{where}: {value!r} not in {allowed}")
        elif check == "not_nullable":
            out.append(f"{where}: missing value")
        elif check.startswith("dtype"):
            out.append(f"{where}: {value!r} is not of type {check[7:-2]}")
        else:
            out.append(f"{where}: {value!r} fails {check}")
    return out


def cross_field_problems(df: pd.DataFrame, taxonomy: Taxonomy) -> list[str]:
    problems: list[str] = []
    dup = df["item_id"].duplicated(keep="first")
    first_row = {v: i for i, v in reversed(list(enumerate(df["item_id"])))}
    for i in np.flatnonzero(dup.to_numpy()):
        where = f"{_row(df, i)}: field 'item_id'"
        problems.append(f"{where}: duplicate of row {first_row[df['item_id'].iat[i]] + 1}")
    for col in ("image", "raw"):
        for i, p in enumerate(df[col]):
            reason = None if p is None else _path_problem(p)
            if reason:
                problems.append(f"{_row(df, i)}: field {col!r}: {p!r} {reason}")
    not_paper = [n for n in taxonomy.names if n not in taxonomy.paper]
    claims = (df["paper_only"].to_numpy() == 1) & (df[not_paper].to_numpy() == 1).any(axis=1)
    for i in np.flatnonzero(claims):
        present = [n for n in not_paper if df[n].iat[i] == 1]
        problems.append(f"{_row(df, i)}: field 'paper_only': 1 but non-paper class(es) {present}")
    problems += _low_risk_problems(df, taxonomy)
    names = set(taxonomy.names)
    for i, (boxes, meta, w, h) in enumerate(
        zip(df["boxes"], df["meta"], df["width"], df["height"], strict=True)
    ):
        for msg in _box_problems(boxes, names, int(w), int(h)):
            problems.append(f"{_row(df, i)}: field 'boxes': {msg}")
        for label in _box_labels(boxes):
            if label in names and df[label].iat[i] != 1:
                problems.append(
                    f"{_row(df, i)}: field {label!r}: 0 but a box is labelled {label!r}"
                )
        try:
            parsed = json.loads(meta)
        except (TypeError, ValueError):
            parsed = None
        if not isinstance(parsed, dict):
            problems.append(f"{_row(df, i)}: field 'meta': not a JSON object: {meta!r:.80}")
        else:
            problems += [f"{_row(df, i)}: {m}" for m in _evidence_problems(df, i, parsed, taxonomy)]
    return problems


def _low_risk_problems(df: pd.DataFrame, taxonomy: Taxonomy) -> list[str]:
    """no_threat = 1 contradicts any threat; paper_only = 1 implies no_threat = 1."""
    out = []
    threats = df[taxonomy.threats].to_numpy() == 1
    no_threat, paper_only = df["no_threat"].to_numpy() == 1, df["paper_only"].to_numpy() == 1
    for i in np.flatnonzero(no_threat & threats.any(axis=1)):
        present = [t for t, on in zip(taxonomy.threats, threats[i], strict=True) if on]
        out.append(f"{_row(df, i)}: field 'no_threat': 1 but threat class(es) {present}")
    for i in np.flatnonzero(paper_only & ~no_threat):
        out.append(f"{_row(df, i)}: field 'no_threat': 0 but paper_only is 1 (only paper "
                   "present means no threat present)")
    return out


def _evidence_problems(
    df: pd.DataFrame, i: int, meta: dict, taxonomy: Taxonomy
) -> list[str]:
    """A recorded `complete_labels` must back every absence the row claims."""
    if META_KEY not in meta:
        return []
    try:
        completeness = row_completeness(meta)
        completeness.check(taxonomy, where=f"meta[{META_KEY!r}]")
    except ValueError as e:
        return [f"field 'meta': {e}"]
    complete = completeness.classes(taxonomy)
    out = []
    setting = completeness.to_json()
    if df["paper_only"].iat[i] == 1 and not set(taxonomy.names) - set(taxonomy.paper) <= complete:
        out.append(f"field 'paper_only': 1 but complete_labels {setting!r} does not cover "
                   "every non-paper class")
    if df["no_threat"].iat[i] == 1 and not set(taxonomy.threats) <= complete:
        out.append(f"field 'no_threat': 1 but complete_labels {setting!r} does not cover "
                   "every threat class")
    return out


def _path_problem(p: str) -> str | None:
    """Image paths stay inside the dataset folder: relative, posix, no `..`."""
    if "\\" in p:
        return "uses backslashes (posix paths only)"
    pp = PurePosixPath(p)
    if pp.is_absolute() or (len(p) > 1 and p[1] == ":"):
        return "is absolute (must be relative to the dataset folder)"
    if ".." in pp.parts:
        return "escapes the dataset folder ('..')"
    return None


def _box_labels(boxes: str) -> list[str]:
    try:
        return [b["label"] for b in json.loads(boxes) if isinstance(b, dict) and "label" in b]
    except (TypeError, ValueError):
        return []


def _box_problems(boxes: str, names: set[str], width: int, height: int) -> list[str]:
    try:
        parsed = json.loads(boxes)
    except (TypeError, ValueError):
        return [f"not valid JSON: {boxes!r:.80}"]
    if not isinstance(parsed, list):
        return ["not a JSON list"]
    out = []
    for k, b in enumerate(parsed):
        if not isinstance(b, dict) or set(b) != {"label", "xyxy"}:
            out.append(f"box #{k}: expected {{'label', 'xyxy'}}, got {b!r:.80}")
            continue
        if b["label"] not in names:
            out.append(f"box #{k}: label {b['label']!r} not in the taxonomy")
        xyxy = b["xyxy"]
        nums = (
            isinstance(xyxy, list)
            and len(xyxy) == 4
            and all(
                isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                for v in xyxy
            )
        )
        if not nums:
            out.append(f"box #{k}: xyxy must be 4 finite numbers, got {xyxy!r:.80}")
        elif not (0 <= xyxy[0] <= xyxy[2] <= width and 0 <= xyxy[1] <= xyxy[3] <= height):
            out.append(f"box #{k}: xyxy {xyxy} not ordered inside the {width}x{height} image")
    return out


def missing_files(df: pd.DataFrame, root: Path) -> list[str]:
    problems = []
    for col in ("image", "raw"):
        for i, p in enumerate(df[col]):
            if p is not None and not (root / p).is_file():
                problems.append(f"{_row(df, i)}: field {col!r}: file {p!r} not found under {root}")
    return problems


# --- reading and writing ---------------------------------------------------------------
