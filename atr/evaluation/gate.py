"""`atr gate`: score models:/NAME@challenger and @champion on the frozen gold set and the
newest labelled frontline batch, and put the comparison on the challenger version.

Written to the challenger version: its description (markdown tables, verdict, rule) and
tags `gate.<dataset>.<metric>` (challenger figures), `gate.<dataset>.champion.<metric>`,
`gate.<dataset>.verdict`, `gate.verdict` (better|worse|mixed|no-champion, rule in
atr/evaluation/gate_rules.py), `gate.champion_version`, `gate.at`, `gate.policy_warnings` (how
many calibration warnings the challenger's policy carries; listed first in the description,
a triage-only policy's warning first of all), `gate.policy_mode` (certified|triage_only),
`gate.low_risk` (the definition CLEAR was calibrated under: paper_only|no_threat) and
`gate.champion.low_risk`. The report is also printed and saved to `gate.report`. No alias
moves here: a reviewer decides (`atr approve`, UI).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from atr.evaluation import gate_rules as rules
from atr.package.fetch import fetch_verified, resolve_version
from atr.package.layout import POLICY_FILE
from atr.policy.decision import Policy
from atr.policy.triage import WARNING_PREFIX as TRIAGE_PREFIX
from atr.registry.tracking import cfg_value, configure, model_name

KEY_FIGURES = ("n", "auto_clear_rate", "leak_count", "leak_rate", "leak_rate_upper",
               "threat_cleared_count", "analyst_load", "inspect_rate")
DESCRIPTION_LIMIT = 5000  # model_versions.description is VARCHAR(5000) in MLflow's schema
DEFAULT_LEAK_TARGET = 0.005


def gate(cfg: Any) -> dict[str, Any]:
    """Compare challenger with champion; returns verdicts, tags written and the markdown."""
    client = configure(cfg)
    name = model_name(cfg)
    challenger = resolve_version(client, name, cfg_value(cfg, "gate.challenger", "challenger"))
    if challenger is None:
        raise ValueError(f"model {name}: no version for {cfg_value(cfg, 'gate.challenger')!r}; "
                         "register one first (atr register)")
    champion = resolve_version(client, name, cfg_value(cfg, "gate.champion", "champion"))
    if champion is not None and str(champion.version) == str(challenger.version):
        champion = None  # a version cannot be gated against itself
    workdir = Path(str(cfg_value(cfg, "gate.download_dir", "runtime/gate")))
    packages = {"challenger": fetch_verified(client, challenger, workdir).path}
    if champion is not None:
        packages["champion"] = fetch_verified(client, champion, workdir).path

    leak_target = _leak_target(cfg, packages["challenger"])
    margin = float(cfg_value(cfg, "gate.auto_clear_margin", 0.01))
    sections, tags, verdicts = [], {}, {}
    for label, (dataset, split) in datasets(cfg).items():
        reports = {role: evaluate(pkg, dataset, split) for role, pkg in packages.items()}
        verdicts[label] = rules.dataset_verdict(
            reports["challenger"], reports.get("champion"), leak_target, margin)
        tags.update(_figures(f"gate.{label}", reports["challenger"]))
        if "champion" in reports:
            tags.update(_figures(f"gate.{label}.champion", reports["champion"]))
        tags[f"gate.{label}.verdict"] = verdicts[label]
        sections.append(_section(label, dataset, split, reports, challenger, champion,
                                 verdicts[label]))
    if not verdicts:
        raise FileNotFoundError(f"no gate dataset found: {cfg_value(cfg, 'gate.gold_dataset')} "
                                "has no manifest.parquet and no frontline batch is labelled")

    overall = rules.overall_verdict(verdicts)
    policies = {role: Policy.load(pkg / POLICY_FILE) for role, pkg in packages.items()}
    policy_warnings = _policy_warnings(policies["challenger"])
    tags.update({
        "gate.policy_warnings": str(len(policy_warnings)),
        "gate.policy_mode": policies["challenger"].mode,
        "gate.low_risk": policies["challenger"].low_risk,
        "gate.champion.low_risk": policies["champion"].low_risk if champion else "none",
        "gate.verdict": overall,
        "gate.champion_version": str(champion.version) if champion else "none",
        "gate.leak_target": str(leak_target),
        "gate.at": datetime.now(UTC).isoformat(timespec="seconds"),
        "gate.checksums": "verified",
    })
    markdown = _document(name, challenger, champion, overall, sections, leak_target, margin,
                         policy_warnings, policies)
    client.update_model_version(name, challenger.version, description=_fit(markdown))
    for key, value in tags.items():
        client.set_model_version_tag(name, challenger.version, key, value)
    report_path = cfg_value(cfg, "gate.report")
    if report_path:
        Path(str(report_path)).parent.mkdir(parents=True, exist_ok=True)
        Path(str(report_path)).write_text(markdown)
    return {"verdict": overall, "datasets": verdicts, "challenger": int(challenger.version),
            "champion": int(champion.version) if champion else None, "tags": tags,
            "markdown": markdown}


def run(cfg: Any) -> str:
    """Job for `atr gate`: prints the report (the CLI prints what this returns)."""
    return gate(cfg)["markdown"]


def datasets(cfg: Any) -> dict[str, tuple[Path, str]]:
    """{label: (dataset folder, split)}: the gold set and the newest labelled frontline batch."""
    found: dict[str, tuple[Path, str]] = {}
    gold = Path(str(cfg_value(cfg, "gate.gold_dataset", "data/gold")))
    if (gold / "manifest.parquet").is_file():
        found["gold"] = (gold, str(cfg_value(cfg, "gate.split", "test")))
    frontline = Path(str(cfg_value(cfg, "gate.frontline_dir", "data/frontline")))
    batch = newest_frontline_batch(frontline)
    if batch is not None:
        found["frontline"] = (batch, str(cfg_value(cfg, "gate.frontline_split", "all")))
    return found


def newest_frontline_batch(frontline_dir: Path) -> Path | None:
    """Newest subfolder holding a manifest (by the manifest's modification time, then name)."""
    if not frontline_dir.is_dir():
        return None
    batches = [d for d in frontline_dir.iterdir() if (d / "manifest.parquet").is_file()]
    if not batches:
        return None
    return max(batches, key=lambda d: ((d / "manifest.parquet").stat().st_mtime, d.name))


def evaluate(package: Path, dataset: Path, split: str) -> dict[str, Any]:
    """evaluate_package on one split, or on every row when split is "all" (frontline
    batches are labelled whole and carry whatever split their importer wrote)."""
    from atr.evaluation.report import evaluate_package

    if split != "all":
        return evaluate_package(package, dataset, split)
    from atr.evaluation.report import report_from_frame
    from atr.evaluation.scoring import load_dataset, score_dataset
    from atr.package.onnx_scorer import load_scorer

    scorer = load_scorer(package)
    frame = score_dataset(scorer, load_dataset(dataset), None)
    return {"package": str(package), "dataset": str(dataset), "split": split,
            **report_from_frame(frame, scorer.policy, scorer.outputs)}


def _leak_target(cfg: Any, package: Path) -> float:
    configured = cfg_value(cfg, "gate.leak_target")
    if configured is not None:
        return float(configured)
    import json

    policy = json.loads((package / POLICY_FILE).read_text())
    return float((policy.get("targets") or {}).get("leak_rate_target", DEFAULT_LEAK_TARGET))


def _figures(prefix: str, report: dict[str, Any]) -> dict[str, str]:
    pol = report.get("policy") or {}
    figures = {k: pol.get(k) for k in KEY_FIGURES}
    figures.update(macro_auroc=report.get("macro_auroc"), macro_ap=report.get("macro_ap"))
    return {f"{prefix}.{k}": "n/a" if v is None else f"{v:.6g}" if isinstance(v, float) else str(v)
            for k, v in figures.items()}


def _section(label: str, dataset: Path, split: str, reports: dict[str, Any],
             challenger: Any, champion: Any, verdict: str) -> str:
    from atr.evaluation.report import report_markdown

    named = {f"challenger v{challenger.version}": reports["challenger"]}
    if champion is not None:
        named[f"champion v{champion.version}"] = reports["champion"]
    return (f"### {label}: `{dataset}` (split {split}) -> **{verdict}**\n\n"
            f"{report_markdown(named)}")


def _document(name: str, challenger: Any, champion: Any, overall: str, sections: list[str],
              leak_target: float, margin: float, policy_warnings: list[str],
              policies: dict[str, Policy]) -> str:
    against = f"champion v{champion.version}" if champion else "no champion yet"
    head = f"## Gate: {name} v{challenger.version} vs {against}\n\n"
    if policy_warnings:  # first, so that truncation of a long description never hides them
        head += "**Policy warnings (from calibration):**\n\n" + "".join(
            f"- {w}\n" for w in policy_warnings) + "\n"
    head += _definitions(challenger, champion, policies)
    head += (f"**Verdict: {overall}** (leak target {leak_target}, auto-clear margin {margin}; "
             f"checksums verified)\n\nRule: {rules.RULE}\n")
    return "\n".join([head, *sections])


def _definitions(challenger: Any, champion: Any, policies: dict[str, Policy]) -> str:
    """Which low-risk definition each version's CLEAR was calibrated under, and its mode."""
    mine = policies["challenger"]
    text = (f"**Low risk (CLEAR evidence): `{mine.low_risk}`**, policy mode `{mine.mode}` "
            f"(challenger v{challenger.version})")
    if champion is not None:
        theirs = policies["champion"]
        text += f"; champion v{champion.version}: `{theirs.low_risk}`, `{theirs.mode}`"
        if theirs.low_risk != mine.low_risk:
            text += (". The definitions differ: each version's leaks are counted against its "
                     "own low-risk truth column, so the leak figures do not measure the same "
                     "thing")
    return text + "\n\n"


def _policy_warnings(policy: Policy) -> list[str]:
    """The challenger's calibration warnings (e.g. a scanner its leak bound does not cover),
    a triage-only policy's warning first (added if a hand-made policy.json lacks it)."""
    warnings = sorted(policy.warnings, key=lambda w: not w.startswith(TRIAGE_PREFIX))
    if policy.triage_only and not (warnings and warnings[0].startswith(TRIAGE_PREFIX)):
        warnings.insert(0, f"{TRIAGE_PREFIX}: this policy never CLEARs (threats go to INSPECT, "
                           "everything else to REVIEW)")
    return warnings


def _fit(markdown: str) -> str:
    if len(markdown) <= DESCRIPTION_LIMIT:
        return markdown
    note = "\n\n_(truncated: full report in gate.report and printed by `atr gate`)_\n"
    return markdown[: DESCRIPTION_LIMIT - len(note)] + note
