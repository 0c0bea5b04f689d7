"""`python -m atr.registry.mlflow_launch [--auth-dir DIR] [--job-execution] OPTIONS...`:
`mlflow server OPTIONS...` with the environment ATR's server needs, set in-process so the
server and every worker it forks inherit it and nothing secret is on a command line.

- `--auth-dir DIR`: the auth files of atr/registry/auth_config.py (MLflow's auth config,
  admin bootstrap password, Flask secret key) and `--app-name atr-auth`;
- MLflow's job execution (huey consumers for GenAI jobs: prompt optimisation, scorers; ATR
  uses none of it, seven processes, ~1 GB) is off unless `--job-execution` is given.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from atr.registry.auth_config import APP_NAME, server_env


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    jobs = "--job-execution" in args
    args = [a for a in args if a != "--job-execution"]
    os.environ["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "true" if jobs else "false"
    if args[:1] == ["--auth-dir"]:
        if len(args) < 2:
            raise SystemExit("--auth-dir needs a folder")
        os.environ.update(server_env(Path(args[1])))
        args = [*args[2:], "--app-name", APP_NAME]
    from mlflow.cli import cli

    cli.main(["server", *args], prog_name="mlflow")


if __name__ == "__main__":
    main()
