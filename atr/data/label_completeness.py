"""Which classes a source labels completely, and the truth that follows from it.

A source "labels class c completely" when every image showing a c says so. Only then
does a missing c label mean "no c here". The two low-risk truth columns of the manifest
are claims of absence, so each needs completeness behind it:

- `paper_only = 1`: some paper class is labelled and nothing else is present. Needs every
  non-paper class complete (a labelled paper class is positive evidence on its own).
- `no_threat = 1`: no threat is present. Needs every threat class complete.

The setting (`importer.complete_labels`) is one of
    false      no class complete (the default: never claim absence without evidence)
    true       every class complete (simulator, analyst verdicts, fully annotated sources)
    threats    every threat class complete (public threat archives: enables no_threat)
    [a, b]     exactly these ATR classes complete
and is recorded per row in `meta["complete_labels"]` (same spelling), so a row keeps its
evidence when datasets are merged. A row without the key comes from a writer whose labels
are complete (the simulator, frontline batches of analyst/inspection verdicts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from atr.policy.taxonomy import Taxonomy

META_KEY = "complete_labels"
_TRUE = {"true", "all", "yes"}
_FALSE = {"false", "none", "no", ""}


@dataclass(frozen=True)
class LabelCompleteness:
    """Normalised setting: True, False, "threats" or a sorted tuple of ATR class names."""

    spec: bool | str | tuple[str, ...]

    @classmethod
    def parse(cls, value: Any, where: str = "importer.complete_labels") -> LabelCompleteness:
        if value is None or isinstance(value, bool):
            return cls(bool(value))
        if isinstance(value, str):
            word = value.strip().lower()
            if word in _TRUE or word in _FALSE:
                return cls(word in _TRUE)
            if word == "threats":
                return cls("threats")
            raise ValueError(
                f"{where}: {value!r} is not true, false, threats or a list of class names"
            )
        if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
            return cls(tuple(sorted({str(v) for v in value})))
        raise ValueError(
            f"{where}: {value!r} is not true, false, threats or a list of class names"
        )

    def check(self, taxonomy: Taxonomy, where: str = "importer.complete_labels") -> None:
        """Refuse class names the taxonomy does not have (a typo would claim nothing)."""
        if isinstance(self.spec, tuple):
            unknown = sorted(set(self.spec) - set(taxonomy.names))
            if unknown:
                raise ValueError(
                    f"{where}: {unknown} are not ATR classes ({', '.join(taxonomy.names)})"
                )

    def classes(self, taxonomy: Taxonomy) -> set[str]:
        if self.spec is True:
            return set(taxonomy.names)
        if self.spec == "threats":
            return set(taxonomy.threats)
        return set(self.spec) if isinstance(self.spec, tuple) else set()

    def paper_only(self, labels: Mapping[str, int], taxonomy: Taxonomy) -> int:
        non_paper = set(taxonomy.names) - set(taxonomy.paper)
        if not non_paper <= self.classes(taxonomy):
            return 0
        return taxonomy.paper_only(labels)

    def no_threat(self, labels: Mapping[str, int], taxonomy: Taxonomy) -> int:
        if not set(taxonomy.threats) <= self.classes(taxonomy):
            return 0
        return taxonomy.no_threat(labels)

    def to_json(self) -> bool | str | list[str]:
        return list(self.spec) if isinstance(self.spec, tuple) else self.spec

    def describe(self, taxonomy: Taxonomy) -> dict[str, Any]:
        """For dataset.json: the setting and the classes it resolves to."""
        return {"setting": self.to_json(), "classes": sorted(self.classes(taxonomy))}


COMPLETE = LabelCompleteness(True)


def row_completeness(meta: Mapping[str, Any]) -> LabelCompleteness:
    """A manifest row's completeness: `meta["complete_labels"]`, or complete when absent."""
    if META_KEY not in meta:
        return COMPLETE
    return LabelCompleteness.parse(meta[META_KEY], where=f"meta[{META_KEY!r}]")
