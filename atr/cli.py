"""The `atr` command: one subcommand per job, each composing its own Hydra config.

    atr <command> [<subcommand>] [key=value ...]

Everything after the command is a Hydra override (`atr train trainer.max_epochs=3
model=resnet10t`), so any config key can be set from the command line and a
misspelt key fails with Hydra's own message. `atr approve VERSION --by NAME`
also takes the two arguments reviewers expect.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from omegaconf import DictConfig

from atr.config import compose, conf_dir


@dataclass(frozen=True)
class Job:
    config: str
    target: str  # "module:function", imported only when the job runs
    help: str


JOBS: dict[str, Job] = {
    "data synth": Job("synth", "atr.data.synth:synthesize", "simulate a dataset of X-ray parcels"),
    "data import": Job("import", "atr.data.importers:import_dataset", "import a real dataset"),
    "prepare": Job("prepare", "atr.data.prepare:run", "sources + frontline -> training set"),
    "train": Job("train", "atr.train:run", "train the screening model"),
    "pretrain": Job("pretrain", "atr.pretrain:run", "pretrain a backbone on simulated data"),
    "evaluate": Job("evaluate", "atr.evaluation.job:run", "calibrate + evaluate a model"),
    "register": Job("register", "atr.registry.register:run", "register the package in MLflow"),
    "gate": Job("gate", "atr.evaluation.gate:run", "compare @challenger with @champion"),
    "approve": Job("approve", "atr.registry.approve:run", "move @champion to a version"),
    "mlflow": Job("mlflow", "atr.registry.server:run", "start the MLflow server + UI"),
    "serve": Job("serve", "serving.main:run", "serve @champion to the sorting line"),
    "line": Job("line", "atr.line.run:run", "stream simulated parcels to a service"),
    "monitor": Job("monitor", "atr.monitor.job:run", "drift reports and drift events"),
    "labels export": Job("labels", "atr.labels.job:export", "label queue -> Label Studio"),
    "labels import": Job("labels", "atr.labels.job:import_", "Label Studio -> feedback"),
    "labels batch": Job("labels", "atr.labels.job:batch", "feedback -> frontline batch"),
    "retrain": Job("retrain", "atr.retrain:run", "retrain on base + frontline data, gate"),
    "demo": Job("demo", "atr.demo:run", "the closed loop, end to end"),
    "archive-demo": Job("archive", "atr.archive.demo:run",
                        "a real archive end to end, then a new scanner's drift"),
}


def _resolve(target: str) -> Callable[[DictConfig], object]:
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


def _approve_args(args: list[str]) -> list[str]:
    """Turn `VERSION --by NAME` into Hydra overrides; other tokens pass through."""
    out: list[str] = []
    it = iter(args)
    for tok in it:
        if tok == "--by":
            out.append(f"approve.by={next(it, '')}")
        elif tok.startswith("--by="):
            out.append(f"approve.by={tok[5:]}")
        elif tok == "--auto-approve":
            out.append("approve.mode=auto-simulation")
        elif "=" not in tok and not tok.startswith("-"):
            out.append(f"approve.version={tok}")
        else:
            out.append(tok)
    return out


def _usage() -> str:
    lines = ["usage: atr <command> [key=value ...]", "", "commands:"]
    lines += [f"  atr {name:<12} {job.help}" for name, job in JOBS.items()]
    lines += ["", "A job's keys: atr <command> --help; its composed config: atr <command> --cfg"]
    return "\n".join(lines)


def _job_help(name: str, job: Job) -> str:
    """The job's usage, then its config file's leading comments (they document the keys)."""
    lines = [f"usage: atr {name} [key=value ...] [--cfg]", "", f"{job.help}.", ""]
    path = conf_dir() / f"{job.config}.yaml"
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[2:] if line.startswith("# ") else line[1:])
    lines += ["", f"Every key of conf/{job.config}.yaml (and its groups) can be overridden as",
              f"key=value; `atr {name} --cfg` prints the composed config."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    name = args[0]
    if name in {"data", "labels"} and len(args) > 1:
        name, args = f"{name} {args[1]}", args[2:]
    else:
        args = args[1:]
    job = JOBS.get(name)
    if job is None:
        print(f"atr: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    if {"-h", "--help"} & set(args):
        print(_job_help(name, job))
        return 0
    if name == "approve":
        args = _approve_args(args)
    elif name == "retrain":
        args = ["retrain.auto_approve=true" if a == "--auto-approve" else a for a in args]
    show_cfg = "--cfg" in args
    overrides = [a for a in args if a != "--cfg"]
    try:
        cfg = compose(job.config, overrides)
    except Exception as exc:  # Hydra's composition errors already name the key
        print(f"atr {name}: bad configuration: {exc}", file=sys.stderr)
        return 2
    if show_cfg:
        from omegaconf import OmegaConf

        print(OmegaConf.to_yaml(cfg, resolve=True))
        return 0
    try:
        result = _resolve(job.target)(cfg)
    except (ValueError, FileNotFoundError, FileExistsError, LookupError) as exc:
        # Domain errors (bad manifest, unknown class, refused calibration) carry
        # their own message naming file/line/field: show it without a traceback.
        print(f"atr {name}: error: {exc}", file=sys.stderr)
        return 1
    if isinstance(result, dict):
        print(json.dumps(result, indent=2, default=str))
    elif result is not None:
        print(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
