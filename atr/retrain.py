"""`atr retrain`: labelled frontline batches -> DVC pipeline -> @challenger -> gate.

The pipeline is the same one an engineer runs by hand (`cd pipelines && dvc repro`): the
prepare stage merges the sources of `dataset.sources` (simulator recipes, imported archives)
with the newest frontline batches (weighting and recency from pipelines/params.yaml), then
train -> evaluate -> register move `@challenger`; the gate compares it with `@champion` on
the gold set and the newest frontline batch. Approval stays a human act: `--auto-approve`
(retrain.auto_approve) exists for simulations only and is recorded as
`approval.mode=auto-simulation`.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from atr.config import compose

log = logging.getLogger(__name__)


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _overrides(cfg: DictConfig) -> list[str]:
    """The caller's runtime folders, passed on to every sub-job."""
    return [f"paths.{k}={v}" for k, v in OmegaConf.to_container(cfg.paths, resolve=True).items()
            if k in ("root", "data_dir", "artifacts_dir")] + [
        f"registry.model_name={cfg.registry.model_name}"]


def dvc_repro(repo: Path, env: dict[str, str] | None = None) -> str:
    """`dvc add data` (new batches become part of data.dvc) then `dvc repro`."""
    run_env = {**os.environ, **(env or {})}
    run_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{run_env.get('PATH', '')}"
    steps = [[_bin("dvc"), "add", "-q", "data"], [_bin("dvc"), "repro"]]
    out = []
    for cmd in steps:
        cwd = repo / "pipelines" if cmd[-1] == "repro" else repo
        done = subprocess.run(cmd, cwd=cwd, env=run_env, capture_output=True, text=True)
        out.append(done.stdout)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[1:])} failed in {cwd}:\n{done.stdout[-3000:]}"
                               f"\n{done.stderr[-3000:]}")
    return "\n".join(out)


def run(cfg: DictConfig) -> dict[str, Any]:
    from atr.evaluation.gate import gate
    from atr.labels.job import batch
    from atr.registry.approve import approve

    r = cfg.retrain
    repo = Path(str(r.repo)).resolve()
    base = _overrides(cfg)
    summary: dict[str, Any] = {}
    if r.make_batch:
        summary["batch"] = batch(compose("labels", [*base[:-1], f"labels.min_items={r.min_items}"]))
    env = {"ATR_RUNTIME": str(cfg.paths.root)}
    summary["pipeline"] = dvc_repro(repo, env).count("Running stage")
    verdict = gate(compose("gate", base))
    summary["gate"] = {k: verdict[k] for k in ("verdict", "challenger", "champion") if k in verdict}
    if r.auto_approve:
        version = str(verdict["challenger"])
        approve(compose("approve", base), version, by=str(r.approver), mode="auto-simulation")
        summary["approved"] = version
    return summary
