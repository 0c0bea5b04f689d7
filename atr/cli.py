"""The `atr` command: one subcommand per job, each composing its own Hydra config.

    atr <command> [<subcommand>] [key=value ...]

Everything after the command is a Hydra override (`atr train trainer.max_epochs=3
model=resnet10t`), so any config key can be set from the command line and a
misspelt key fails with Hydra's own message. `atr approve VERSION --by NAME`
also takes the two arguments reviewers expect.

`-m` / `--multirun` sweeps, as Hydra's own `-m` does: `atr train -m model.backbone=a,b
seed=0,1` runs the job once per combination (the cartesian product of the sweep
values, in order, the first key varying slowest), one MLflow run each, one summary
line per run. Sweep values are Hydra's override syntax (`a,b`, `range(0,3)`, `glob(*)`).
"""

from __future__ import annotations

import importlib
import itertools
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from omegaconf import DictConfig

from atr.config import compose, conf_dir
from atr.processes import exit_on_signals


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
    "recalibrate": Job("recalibrate", "atr.registry.recalibrate:run",
                       "certify per-scanner clear thresholds from frontline labels"),
    "mlflow": Job("mlflow", "atr.registry.server:run", "start the MLflow server + UI"),
    "mlflow-user": Job("mlflow", "atr.registry.accounts:add_user",
                       "add an MLflow account: NAME --role reviewer|service|reader"),
    "serve": Job("serve", "serving.main:run", "serve @champion to the sorting line"),
    "line": Job("line", "atr.line.run:run", "stream simulated parcels to a service"),
    "monitor": Job("monitor", "atr.monitor.job:job", "drift reports and drift events"),
    "labels server": Job("labels", "atr.labels.labelstudio_server:serve",
                         "Label Studio on loopback (make labelstudio-up)"),
    "labels export": Job("labels", "atr.labels.job:export", "label queue -> Label Studio"),
    "labels import": Job("labels", "atr.labels.job:import_", "Label Studio -> feedback"),
    "labels batch": Job("labels", "atr.labels.job:batch", "feedback -> frontline batch"),
    "pipeline": Job("retrain", "atr.retrain:pipeline",
                    "pin train.init_version, dvc add data, dvc repro"),
    "retrain": Job("retrain", "atr.retrain:run", "retrain on base + frontline data, gate"),
    "safe-mode status": Job("safe_mode", "atr.line.safe_mode:status",
                            "scanners in safe mode, and the log"),
    "safe-mode enter": Job("safe_mode", "atr.line.safe_mode:enter",
                           "put a scanner in safe mode (operator key)"),
    "safe-mode lift": Job("safe_mode", "atr.line.safe_mode:lift",
                          "lift a scanner's safe mode (operator key)"),
    "store upgrade": Job("store", "atr.store.maintenance:upgrade",
                         "create/migrate the prediction store (--url URL)"),
    "store current": Job("store", "atr.store.maintenance:current",
                         "the store's schema revision vs this code's"),
    "store prune": Job("store", "atr.store.maintenance:prune",
                       "remove unlabelled images past retention (--dry-run)"),
    "stack up": Job("stack", "atr.stack.job:up", "start the distributed stack (background)"),
    "stack down": Job("stack", "atr.stack.job:down", "stop the distributed stack"),
    "stack status": Job("stack", "atr.stack.job:status", "the stack's servers and URLs"),
    "keys": Job("keys", "atr.keys.job:run", "API keys: issue|revoke|list (--role, --scanner)"),
    "demo": Job("demo", "atr.demo:run", "the closed loop, end to end"),
    "archive-demo": Job("archive", "atr.archive.demo:run",
                        "a real archive end to end, then a new scanner's drift"),
}


def _resolve(target: str) -> Callable[[DictConfig], object]:
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


def _named_args(args: list[str], section: str, positional: str,
                flags: dict[str, str] | None = None) -> list[str]:
    """Turn `VALUE --by NAME [--flag]` into `section.positional=VALUE section.by=NAME` and
    the flags' overrides; other tokens pass through."""
    out: list[str] = []
    it = iter(args)
    for tok in it:
        if tok == "--by":
            out.append(f"{section}.by={next(it, '')}")
        elif tok.startswith("--by="):
            out.append(f"{section}.by={tok[5:]}")
        elif tok in (flags or {}):
            out.append((flags or {})[tok])
        elif "=" not in tok and not tok.startswith("-"):
            out.append(f"{section}.{positional}={tok}")
        else:
            out.append(tok)
    return out


def _flags(name: str, args: list[str]) -> list[str]:
    """The few flags a job takes besides key=value, as the overrides they stand for."""
    if name == "approve":  # atr approve VERSION --by NAME [--auto-approve]
        return _named_args(args, "approve", "version",
                           {"--auto-approve": "approve.mode=auto-simulation"})
    if name.startswith("safe-mode "):  # atr safe-mode lift SCANNER --by NAME
        return _named_args(args, "safe_mode", "scanner")
    if name.startswith("store "):  # atr store upgrade --url URL; atr store prune --dry-run
        return _store_flags(args)
    if name == "mlflow-user":  # atr mlflow-user NAME --role ROLE
        joined = " ".join(args).replace("--role=", "--role ").split()
        roles = [f"mlflow.user.role={r}" for f, r in zip(joined, joined[1:], strict=False)
                 if f == "--role"]
        rest = [a for i, a in enumerate(joined) if a != "--role" and
                (i == 0 or joined[i - 1] != "--role")]
        return [*roles, *_named_args(rest, "mlflow.user", "name")]
    if name == "keys":  # atr keys issue --role scanner --scanner A --name N; revoke N
        from atr.keys.job import flags

        return flags(args)
    if name == "retrain":
        return ["retrain.auto_approve=true" if a == "--auto-approve" else a for a in args]
    if name == "monitor":  # --watch: a pass a minute; --watch=N: every N seconds
        return ["monitor.watch_s=60" if a == "--watch" else
                f"monitor.watch_s={a[8:]}" if a.startswith("--watch=") else a for a in args]
    return args


def _store_flags(args: list[str]) -> list[str]:
    out: list[str] = []
    it = iter(args)
    for tok in it:
        if tok == "--url" or tok.startswith("--url="):
            url = tok[6:] if tok.startswith("--url=") else next(it, "")
            out.append("store.url='" + url.replace("\\", "\\\\").replace("'", "\\'") + "'")
        else:
            out.append("store.dry_run=true" if tok == "--dry-run" else tok)
    return out


def sweep(overrides: Sequence[str]) -> list[list[str]]:
    """Hydra's sweep overrides (`k=a,b`, `k=range(3)`) -> one override list per
    combination, parsed by Hydra's own override parser; other overrides pass unchanged."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    axes: list[list[str]] = []
    for text in overrides:
        parsed = parser.parse_override(text)
        if parsed.is_sweep_override():
            key = parsed.get_key_element()
            axes.append([f"{key}={value}" for value in parsed.sweep_string_iterator()])
        else:
            axes.append([text])
    return [list(combo) for combo in itertools.product(*axes)]


def _summary(result: object) -> str:
    """A run's result on one line: its scalar entries, floats rounded."""
    if not isinstance(result, dict):
        return str(result).splitlines()[0][:120] if result is not None else ""
    items = [f"{k}={round(v, 4) if isinstance(v, float) else v}" for k, v in result.items()
             if isinstance(v, int | float | str) and len(str(v)) <= 60]
    return " ".join(items[:6])


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
    if name in {"data", "labels", "safe-mode", "store", "stack"} and len(args) > 1:
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
    args = _flags(name, args)
    # SIGTERM/SIGHUP end a job through its `finally` blocks, so the children it started
    # (servers, the demo's service) are stopped with it (atr/processes.py)
    exit_on_signals()
    multirun = bool({"-m", "--multirun"} & set(args))
    show_cfg = "--cfg" in args
    overrides = [a for a in args if a not in {"--cfg", "-m", "--multirun"}]
    try:
        runs = sweep(overrides) if multirun else [overrides]
    except Exception as exc:  # Hydra's parser names the bad override
        print(f"atr {name}: bad sweep: {exc}", file=sys.stderr)
        return 2
    codes = []
    for i, run_overrides in enumerate(runs, 1):
        rc, result = _run_one(name, job, run_overrides, show_cfg)
        codes.append(rc)
        if multirun and not show_cfg:
            state = "ok" if rc == 0 else f"failed (rc {rc})"
            print(f"[atr {name} -m {i}/{len(runs)}] {' '.join(run_overrides)}: {state}"
                  f" {_summary(result) if rc == 0 else ''}".rstrip(), flush=True)
        elif isinstance(result, dict):
            print(json.dumps(result, indent=2, default=str))
        elif result is not None:
            print(result)
    return max(codes)


def _run_one(name: str, job: Job, overrides: list[str], show_cfg: bool) -> tuple[int, object]:
    """Compose and run one job; (exit code, what it returned)."""
    try:
        cfg = compose(job.config, overrides)
    except Exception as exc:  # Hydra's composition errors already name the key
        print(f"atr {name}: bad configuration: {exc}", file=sys.stderr)
        return 2, None
    if show_cfg:
        from omegaconf import OmegaConf

        return 0, OmegaConf.to_yaml(cfg, resolve=True)
    try:
        return 0, _resolve(job.target)(cfg)
    except (ValueError, FileNotFoundError, FileExistsError, LookupError) as exc:
        # Domain errors (bad manifest, unknown class, refused calibration) carry
        # their own message naming file/line/field: show it without a traceback.
        print(f"atr {name}: error: {exc}", file=sys.stderr)
        return 1, None


if __name__ == "__main__":
    raise SystemExit(main())
