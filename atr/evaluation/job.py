"""`atr evaluate`: calibrate + evaluate the pipeline's package, or report on any package.

    atr evaluate                                   # the DVC stage (atr.evaluation.calibrate)
    atr evaluate evaluate.calibrate=false evaluate.package_dir=DIR evaluate.dataset=DS
                                                   # report only: DIR's own policy on DS
    atr evaluate evaluate.model=models:/NAME@ALIAS evaluate.dataset=DS
                                                   # report only: a registered version on DS
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from atr.evaluation import calibrate
from atr.evaluation.report import evaluate_package, report_markdown
from atr.package.manifest import atomic_write_text


def run(cfg: DictConfig) -> dict[str, Any]:
    ev = cfg.evaluate
    model = ev.get("model")
    if bool(ev.get("calibrate", True)) and not model:
        return calibrate.run(cfg)
    # Report-only: never rewrites the package (it may be a registered, approved version).
    split = str(ev.split)
    package = registered_package(cfg, str(model)) if model else Path(ev.package_dir)
    report = evaluate_package(package, ev.dataset, split, int(ev.batch_size))
    out_dir = Path(ev.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / f"report_{split}.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(out_dir / f"report_{split}.md", report_markdown({"package": report}))
    return {
        "low_risk": report["low_risk"],  # the definition the package was calibrated under
        "policy_mode": report["policy_mode"],
        "report": str(out_dir / f"report_{split}.json"),
        "package": str(package),
        "auto_clear_rate": report["policy"]["auto_clear_rate"],
        "leak_rate": report["policy"]["leak_rate"],
        "leak_rate_upper": report["policy"]["leak_rate_upper"],
        "macro_auroc": report["macro_auroc"],
    }


def registered_package(cfg: DictConfig, uri: str) -> Path:
    """Download the package of models:/NAME@ALIAS or models:/NAME/VERSION, checksums verified."""
    from atr.package.fetch import fetch_package
    from atr.registry.model_uri import FORMS, parse_model_uri
    from atr.registry.tracking import configure

    registered = parse_model_uri(uri)
    if registered is None:
        raise ValueError(f"evaluate.model={uri!r}: expected {FORMS}")
    try:
        fetched = fetch_package(configure(cfg), *registered, Path(cfg.evaluate.download_dir))
    except LookupError as exc:
        raise LookupError(f"evaluate.model={uri}: {exc}") from exc
    return fetched.path
