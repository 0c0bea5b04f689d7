"""The archive demo's steps, each the documented ATR job with the demo's runtime paths.

`base` (a list of Hydra overrides) points every job at the demo's runtime root and the
working copy's data/ and artifacts/, and names the archive's registered model. Each step's
own overrides are merged onto it by key (atr.config.merge_overrides): one of them may
replace a `base` key, never duplicate it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from atr.config import compose, merge_overrides, only


def _paths(base: list[str]) -> list[str]:
    """The runtime paths alone, for jobs without a registry (import, line)."""
    return only(base, "paths.")


def import_archive(base: list[str], overrides: list[str], source: Path, out: Path,
                   name: str, scanner_id: str) -> Path:
    """`atr data import <overrides> importer.source=... importer.out=...`."""
    from atr.data.importers import import_dataset

    return import_dataset(compose("import", merge_overrides(_paths(base), overrides, [
        f"importer.source={source}", f"importer.out={out}", f"importer.name={name}",
        f"importer.scanner_id={scanner_id}", "importer.progress=false"])))


def pipeline(checkout: Path, root: Path) -> dict[str, Any]:
    """`make pipeline` (`atr pipeline`) in the working copy: train.init_version pinned,
    `dvc add data`, `dvc repro`, the stages running `atr` with the demo's runtime
    (ATR_RUNTIME) and the copy's conf/."""
    from atr.retrain import pipeline as run_pipeline

    return run_pipeline(compose("retrain", [f"paths.root={root}", f"retrain.repo={checkout}"]))


def gate(base: list[str], archive: Path, split: str) -> dict[str, Any]:
    """`atr gate` with the archive's held-out split as the gate set (the simulated gold set
    is another scanner and representation; the archive's test split was never trained on)."""
    from atr.evaluation.gate import gate as run_gate

    result = run_gate(compose("gate", merge_overrides(
        base, [f"gate.gold_dataset={archive}", f"gate.split={split}"])))
    return {k: result[k] for k in ("verdict", "challenger", "champion")}


def approve(base: list[str], version: int | str) -> None:
    from atr.registry.approve import approve as run_approve

    run_approve(compose("approve", base), version, by="atr-archive-demo",
                mode="auto-simulation")


@contextmanager
def service(base: list[str], scanners: list[str]) -> Iterator[Any]:
    """`atr serve` on a free loopback port, serving the archive model's @champion; the
    ServiceProcess (its url, and the keys it issued: the scanner key for `scanners`)."""
    from atr.demo_service import ServiceProcess

    cfg = compose("serve", base)
    with ServiceProcess(cfg, scanners=scanners, key_prefix="archive-demo") as proc:
        yield proc


def replay(base: list[str], service: Any, a: DictConfig, dataset: Path, scanner_id: str,
           count: int, prefix: str, seed: int, split: str | None = None,
           feedback: bool | None = None, offset: int = 0) -> dict[str, Any]:
    """`atr line` with one replay phase of `dataset` (count 0: the split once)."""
    from atr.line.run import simulate

    split = split or str(a.replay.split)
    phase = (f"{{dataset: '{dataset}', split: {split}, count: {count}, offset: {offset}, "
             f"scanner_id: {scanner_id}}}")
    use_feedback = bool(a.feedback) if feedback is None else feedback
    return simulate(compose("line", merge_overrides(_paths(base), [
        f"line.url={service.url}", f"line.phases=[{phase}]", f"line.seed={seed}",
        f"line.rate={a.replay.rate}", f"line.item_prefix={prefix}",
        f"line.feedback={str(use_feedback).lower()}", *service.keys.line_overrides(),
        "line.ready_timeout_s=60"])))


def drift_thresholds(base: list[str], package: Path, archive: Path, a: DictConfig,
                     ) -> dict[str, Any] | None:
    """The monitor's thresholds set on the archive's own held-out split (thresholds.py);
    None when archive.monitor.calibrate is false (conf/monitor's thresholds apply)."""
    from atr.archive.thresholds import archive_thresholds

    m = a.monitor
    if not bool(m.calibrate):
        return None
    dims = int(compose("serve", base).serve.embedding_dims)  # what serving stores
    return archive_thresholds(package, archive, str(m.calibration_split),
                              compose("monitor", base).monitor, int(m.window_size), dims,
                              int(m.draws))


class MonitorRuns:
    """`atr monitor` passes with the demo's window (and thresholds, when calibrated);
    every pass is kept for the summary."""

    def __init__(self, base: list[str], window: int, step: int,
                 thresholds: dict[str, float | None] | None = None) -> None:
        self.base, self.window, self.step = base, window, step
        self.overrides = [f"monitor.rule.thresholds.{k}={'null' if v is None else v}"
                          for k, v in (thresholds or {}).items()]
        self.passes: list[dict[str, Any]] = []

    def run(self, scanners: list[str] | None = None) -> dict[str, Any]:
        from atr.monitor.job import run as monitor

        scanners_only = [f"monitor.scanners=[{','.join(scanners)}]"] if scanners else []
        result = monitor(compose("monitor", merge_overrides(self.base, [
            f"monitor.window_size={self.window}", f"monitor.window_step={self.step}",
            "monitor.log_to_mlflow=false"], self.overrides, scanners_only)))
        self.passes.append(result)
        return result


def new_scanner_phase(base: list[str], service: Any, a: DictConfig, crops: Path,
                      monitor: MonitorRuns) -> dict[str, Any]:
    """Replay every crop once, in chunks, the monitor after each chunk: the items sent
    when drift first fired on the new scanner, and each pass's signals."""
    from atr.data.manifest import read_dataset

    scanner = str(a.new_scanner.scanner_id)
    total = len(read_dataset(crops).manifest)
    chunk = max(int(a.replay.chunk), 1)
    sent, detected, timeline, lines = 0, None, [], []
    while sent < total:
        n = min(chunk, total - sent)
        # one seeded order over all crops: chunk k sends positions [sent, sent + n)
        part = replay(base, service, a, crops, scanner, n, prefix=f"{scanner}-c{sent}", seed=1,
                      split="test", feedback=False, offset=sent)
        lines.append(part)
        sent += n
        state = monitor.run([scanner])["scanners"].get(scanner, {})
        timeline.append({"items": sent, "drift": bool(state.get("drift")),
                         "kind": state.get("kind"), "status": state.get("status"),
                         **{s: state.get(s) for s in ("embedding", "scores", "decisions",
                                                      "image_stats")}})
        if state.get("drift") and detected is None:
            detected = sent
    final = monitor.run()
    return {"items": total, "detected_after_items": detected, "timeline": timeline,
            "monitor": final["scanners"], "line": [part["overall"] for part in lines]}
