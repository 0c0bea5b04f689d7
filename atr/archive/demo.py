"""`atr archive-demo`: a real dual-energy archive through ATR end to end, then a new scanner.

import the archive (`atr data import`, conf archive.import) -> `dvc repro` in a working
copy whose params name the import alone (atr/archive/checkout.py) -> `atr gate` on the
archive's test split -> `atr approve` (approval.mode=auto-simulation: no reviewer here)
-> drift thresholds set on the archive's own held-out split (atr/archive/thresholds.py)
-> `atr serve` on loopback -> the line replays the archive's test split (scanner
`archive.archive_scanner`) -> `atr monitor` (no drift expected) -> the line replays the
new scanner's crops (atr/archive/crops.py) in chunks, the monitor after each -> a drift
event for the new scanner and none for the archive's -> summary (printed, and JSON in
`archive.report_dir`).

All state lives in `archive.root` (its own MLflow store, prediction store, image store,
DVC cache), wiped at the start (`archive.keep_registry=true` keeps its MLflow store, e.g.
a backbone pretrained there). Nothing is copied into the repository. A small archive's
calibration split cannot certify the leak bound: the policy is then triage only (never
CLEARs), and the summary says so with the count of labelled items it would take.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from atr.archive.checkout import archive_params, copy_working_tree, write_params
from atr.archive.crops import write_crops
from atr.archive.summary import drift_events, policy_summary, summary_text
from atr.policy.taxonomy import Taxonomy


def _say(msg: str) -> None:
    print(f"[atr archive-demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Steps:
    """Wall time per step, for the summary (the demo's cost on this machine)."""

    def __init__(self) -> None:
        self.t0, self.seconds = time.time(), {}

    def done(self, name: str, since: float) -> None:
        self.seconds[name] = round(time.time() - since, 1)


def _fresh_root(root: Path, keep_registry: bool) -> None:
    if root.exists():
        for child in root.iterdir():
            if keep_registry and child.name == "mlflow":
                continue
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    root.mkdir(parents=True, exist_ok=True)


def run(cfg: DictConfig) -> dict[str, Any]:
    from atr.archive import stages

    a = cfg.archive
    # MLflow's download bars would bury the demo's own lines (gate, approve, monitor)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    steps = Steps()
    for key, what in (("hums", "archive"), ("nist", "new scanner")):
        if OmegaConf.is_missing(a, key):
            raise ValueError(f"archive.{key} is required: the {what} folder "
                             "(make archive-demo HUMS=DIR NIST=DIR)")
    root = Path(str(a.root)).resolve()
    hums, nist = Path(str(a.hums)).resolve(), Path(str(a.nist)).resolve()
    for label, folder in (("archive.hums", hums), ("archive.nist", nist)):
        if not folder.is_dir():
            raise FileNotFoundError(f"{label}={folder}: not a directory")
    _fresh_root(root, bool(a.keep_registry))
    checkout = root / "checkout"
    base = [f"paths.root={root}", f"paths.data_dir={checkout / 'data'}",
            f"paths.artifacts_dir={checkout / 'artifacts'}",
            f"registry.model_name={a.model_name}"]
    taxonomy = Taxonomy.from_dict(OmegaConf.to_container(cfg.taxonomy, resolve=True))

    t = time.time()
    _say(f"copying the working tree of {Path(str(a.repo)).resolve()} to {checkout}")
    copy_working_tree(Path(str(a.repo)).resolve(), checkout)
    import_rel = f"data/imports/{a.source_name}"
    train = OmegaConf.to_container(a.train, resolve=True)
    write_params(checkout, archive_params(checkout, str(a.source_name), import_rel, train,
                                          str(a.model_name)))
    archive = stages.import_archive(base, [str(o) for o in a.import_overrides], hums,
                                    checkout / import_rel, str(a.source_name),
                                    str(a.archive_scanner))
    steps.done("import", t)
    t = time.time()
    ns = a.new_scanner
    _say(f"new scanner {ns.scanner_id}: cutting {nist} into {ns.crop} px crops")
    crops = write_crops(nist, root / "replay" / str(ns.scanner_id), taxonomy,
                        name=str(ns.scanner_id), scanner_id=str(ns.scanner_id),
                        crop=int(ns.crop), stride=int(ns.stride), pattern=str(ns.pattern),
                        exclude=str(ns.exclude))
    steps.done("new_scanner_crops", t)

    t = time.time()
    _say("dvc repro (prepare -> train -> evaluate -> register) on the archive alone")
    stages.pipeline(checkout, root)
    steps.done("pipeline", t)
    t = time.time()
    gate = stages.gate(base, archive, str(a.replay.split))
    version = gate["challenger"]
    _say(f"gate v{version}: {gate['verdict']}; approving (approval.mode=auto-simulation)")
    stages.approve(base, version)
    steps.done("gate_approve", t)

    t = time.time()
    calibration = stages.drift_thresholds(base, checkout / "artifacts" / "model", archive, a)
    if calibration:
        _say(f"drift thresholds from the archive's {calibration['split']} split "
             f"({calibration['held_out_items']} items, {calibration['draws']} resampled "
             f"windows): {calibration['thresholds']}")
    steps.done("drift_thresholds", t)
    monitor = stages.MonitorRuns(base, int(a.monitor.window_size), int(a.monitor.window_step),
                                 calibration["thresholds"] if calibration else None)
    with stages.service(base, [str(a.archive_scanner), str(ns.scanner_id)]) as service:
        t = time.time()
        _say(f"service up at {service.url}; replaying {a.replay.archive_items} items of the "
             f"archive's {a.replay.split} split as {a.archive_scanner}")
        line_a = stages.replay(base, service, a, archive, str(a.archive_scanner),
                               int(a.replay.archive_items), prefix="archive", seed=0)
        after_archive = monitor.run()
        steps.done("replay_archive", t)
        t = time.time()
        _say(f"replaying the new scanner {ns.scanner_id} ({crops}) in chunks of "
             f"{a.replay.chunk}")
        drift = stages.new_scanner_phase(base, service, a, crops, monitor)
        steps.done("replay_new_scanner", t)
    events = drift_events(root, [str(a.archive_scanner), str(ns.scanner_id)])
    summary = {
        "minutes": round((time.time() - steps.t0) / 60, 2),
        "model": {"name": str(a.model_name), "version": version,
                  "approval_mode": "auto-simulation", "gate_verdict": gate["verdict"]},
        "policy": policy_summary(checkout / "artifacts" / "model" / "policy.json"),
        "archive": {"dataset": str(archive), "scanner_id": str(a.archive_scanner),
                    "line": _slim(line_a), "monitor": after_archive["scanners"]},
        "new_scanner": {"dataset": str(crops), "scanner_id": str(ns.scanner_id), **drift},
        "drift_thresholds": calibration,
        "drift_events": events,
        "drift_on_new_scanner": bool(events.get(str(ns.scanner_id))),
        "drift_on_archive_scanner": bool(events.get(str(a.archive_scanner))),
        "steps_s": steps.seconds,
    }
    out = Path(str(a.report_dir))
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    summary["report"] = str(out / "summary.json")
    text = summary_text(summary)
    (out / "summary.txt").write_text(text + "\n")
    print(text, flush=True)
    # the CLI prints what run returns: the headline; everything else is in summary.json
    return {"report": summary["report"], "minutes": summary["minutes"],
            "model": summary["model"], "policy_mode": summary["policy"]["mode"],
            "more_items_to_certify": summary["policy"]["more_items_to_certify"],
            "drift_on_new_scanner": summary["drift_on_new_scanner"],
            "drift_on_archive_scanner": summary["drift_on_archive_scanner"],
            "new_scanner_detected_after_items": drift["detected_after_items"]}


def _slim(line_summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in line_summary.items() if k != "records"}
