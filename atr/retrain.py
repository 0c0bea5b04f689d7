"""`atr retrain` and `atr pipeline`: the one retraining path (CLI, demo and monitor alike).

    atr pipeline                 # pin train.init_version, dvc add data, dvc repro
    atr retrain                  # frontline feedback -> batch -> pipeline -> @challenger -> gate
    atr retrain --auto-approve   # simulations only: approval.mode=auto-simulation

The pipeline is the one an engineer runs (`make pipeline`): the prepare stage merges the
sources of `dataset.sources` with the newest frontline batches, then train -> evaluate ->
register move `@challenger`; the gate compares it with `@champion` on the gold set and the
newest frontline batch. Before `dvc repro`, `train.init_from` (an alias such as
`models:/atr-screening@champion`) is resolved to the version it names and written to
pipelines/params.yaml `train.init_version`, the value the train stage depends on: DVC
cannot see where an alias points, so without this a moved champion would re-run nothing.
Approval stays a human act; `retrain.auto_approve` exists for simulations only.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from atr.config import compose, merge_overrides, only, runtime_overrides
from atr.processes import stop_group

log = logging.getLogger(__name__)

GATE_SUMMARY = ("verdict", "challenger", "champion", "datasets")


def _bin(name: str) -> str:
    # the environment's own tools (a venv's python is a symlink: no resolve())
    return str(Path(sys.executable).with_name(name))


def resolve_init(cfg: DictConfig, init_from: Any) -> str | None:
    """`models:/NAME@ALIAS` -> `models:/NAME/N` (None when the alias is unset: a fresh
    clone trains from scratch); a version, a checkpoint path or null pass through."""
    from atr.registry.model_uri import parse_model_uri

    if init_from is None or str(init_from).strip().lower() in ("", "null", "none"):
        return None
    ref = str(init_from).strip()
    parsed = parse_model_uri(ref)
    if parsed is None or parsed[1].isdigit():
        return ref
    from atr.package.fetch import resolve_version as resolve
    from atr.registry.tracking import configure

    version = resolve(configure(cfg), *parsed)
    return None if version is None else f"models:/{version.name}/{version.version}"


def pin_init_version(cfg: DictConfig, repo: Path) -> str | None:
    """Write `train.init_version` (init_from resolved now) into the repo's params.yaml,
    comments and layout kept; the file is left untouched when the value is unchanged."""
    from atr.pipeline_params import read_params, update_params

    train = read_params(repo)["train"]
    version = resolve_init(cfg, train.get("init_from"))
    update_params(repo, {"train.init_version": version})
    log.info("train.init_from=%s -> train.init_version=%s", train.get("init_from"), version)
    return version


def dvc_repro(repo: Path, env: dict[str, str] | None = None) -> str:
    """`dvc add data` (new batches become part of data.dvc) then `dvc repro`; stdout.

    Each "Running stage" line is printed as it comes (stderr is kept for the error): a
    pipeline runs for minutes, and its caller (demo, retrain, monitor) shows where it is.
    """
    run_env = {**os.environ, **(env or {})}
    run_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{run_env.get('PATH', '')}"
    steps = [([_bin("dvc"), "add", "-q", "data"], repo),
             ([_bin("dvc"), "repro"], repo / "pipelines")]
    out = []
    for cmd, cwd in steps:
        # stderr to a file: a pipe nobody reads while stdout streams would fill and block
        # dvc in its own process group: a job stopped (Ctrl-C, SIGTERM) stops dvc and the
        # stage it runs (atr/processes.py), instead of waiting for it or orphaning it
        with tempfile.TemporaryFile("w+") as err, subprocess.Popen(
                cmd, cwd=cwd, env=run_env, stdout=subprocess.PIPE, stderr=err,
                text=True, start_new_session=True) as proc:
            lines = []
            try:
                for line in proc.stdout or ():
                    lines.append(line)
                    if line.startswith("Running stage"):
                        print(f"  [dvc {time.strftime('%H:%M:%S')}] {line.strip()}",
                              flush=True)
                proc.wait()
            except BaseException:
                stop_group(proc)
                raise
            err.seek(0)
            stderr = err.read()
        out.append("".join(lines))
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[1:])} failed in {cwd}:\n{out[-1][-3000:]}"
                               f"\n{stderr[-3000:]}")
    return "\n".join(out)


def pipeline(cfg: DictConfig) -> dict[str, Any]:
    """Job for `atr pipeline` (make pipeline): pin init_version, then dvc add + dvc repro
    in `retrain.repo`, its stages running with this runtime and the repo's own conf/."""
    repo = Path(str(cfg.retrain.repo)).resolve()
    version = pin_init_version(cfg, repo)
    env = {"ATR_RUNTIME": str(cfg.paths.root)}
    if (repo / "conf" / "taxonomy").is_dir():
        env["ATR_CONF_DIR"] = str(repo / "conf")
    out = dvc_repro(repo, env)
    stages = [line.split("'")[1] for line in out.splitlines()
              if line.startswith("Running stage '")]
    return {"repo": str(repo), "init_version": version, "stages": stages}


def retrain(cfg: DictConfig) -> dict[str, Any]:
    """The retraining path: [feedback -> frontline batch] -> pipeline -> gate ->
    [simulated approval]. Returns batch, pipeline, the full gate result, approved."""
    from atr.evaluation.gate import gate
    from atr.labels.job import batch

    r = cfg.retrain
    base = runtime_overrides(cfg)
    summary: dict[str, Any] = {}
    if r.make_batch:
        written = batch(compose("labels", merge_overrides(
            only(base, "paths."), [f"labels.min_items={r.min_items}"])))
        summary["batch"] = {k: written.get(k) for k in ("batch", "items", "path") if k in written}
    summary["pipeline"] = pipeline(cfg)
    summary["gate"] = gate(compose("gate", base))
    if r.auto_approve:
        from atr.registry.approve import approve
        from atr.stack.tracking import reviewer_from_env

        version = summary["gate"]["challenger"]
        with reviewer_from_env() as reviewer:  # on the stack: its reviewer account
            approve(compose("approve", base), version, by=None if reviewer else str(r.approver),
                    mode="auto-simulation")
        summary["approved"] = version
    return summary


def run(cfg: DictConfig) -> dict[str, Any]:
    """Job for `atr retrain`: retrain(), the gate cut to its verdicts (its report is on the
    challenger version and in gate.report)."""
    summary = retrain(cfg)
    summary["gate"] = {k: summary["gate"][k] for k in GATE_SUMMARY if k in summary["gate"]}
    return summary
