"""The distributed stack on loopback, real servers, in one runtime folder:

    PostgreSQL 15 (atr.stack.postgres)  databases `atr` (prediction store), `mlflow`,
                                         `mlflow_auth` (MLflow's accounts)
    SeaweedFS S3 (atr.stack.objectstore) buckets: images, MLflow artifacts, DVC remote
    MLflow server (atr.stack.tracking)   login required: backend on PostgreSQL, artifacts
                                         proxied to S3, only a reviewer moves @champion
    two `atr serve` replicas             the shared store and images, the stack's MLflow
    HAProxy (atr.stack.balancer)         health-checked, retries, stats page

Started in dependency order, stopped in reverse. The store is migrated (`atr store
upgrade`'s function) before any replica starts: replicas never create tables. Secrets
(PostgreSQL password, S3 key, the replicas' API keys, MLflow's admin and account
passwords) are generated once per folder into `secrets.json` (0600) and reach the servers
by environment, never by command line. The replicas read MLflow as the reader account.
`stack.json` lists the URLs; `stack.env` is what a developer sources to use them (the
jobs' service account; the reviewer's as ATR_REVIEWER_*, for approving on the stack).
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from atr.processes import ChildGroup
from atr.stack import tracking
from atr.stack.balancer import Balancer
from atr.stack.launch import launch
from atr.stack.objectstore import ObjectStore
from atr.stack.postgres import PostgresServer
from atr.stack.replica import Replica

SECRET_KEYS = ("pg_password", "s3_access_key", "s3_secret_key", *tracking.SECRET_KEYS)
# The API keys issued into the replicas' shared keys file (serving/keys.py), one per role.
KEY_ROLES = ("scanner", "inspection", "analyst", "operator")


@dataclass(frozen=True)
class StackSpec:
    """Where the stack lives and listens. Tests build it with free ports; `atr stack` from
    conf/stack.yaml (atr.stack.job.spec_from_cfg)."""

    dir: Path
    postgres_port: int
    s3_port: int
    mlflow_port: int
    balancer_port: int
    stats_port: int
    replica_ports: tuple[int, ...]
    image_store: str = "s3://atr-images/frontline"
    dvc_remote: str = "s3://atr-dvc/data"
    mlflow_bucket: str = "atr-mlflow"
    model_name: str = "atr-screening"
    mlflow_workers: int = 1
    replica_overrides: tuple[str, ...] = field(default_factory=tuple)
    scanners: tuple[str, ...] = ("parcel_160kv", "parcel_140kv", "letter_80kv")  # scan key's
    start_timeout_s: float = 180.0

    @property
    def buckets(self) -> list[str]:
        from atr.store.s3_images import parse_s3_url

        return [parse_s3_url(self.image_store)[0], self.mlflow_bucket,
                parse_s3_url(self.dvc_remote)[0]]

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    def store_url(self, database: str = "atr") -> str:
        """The store's URL without its password (that is PGPASSWORD, in the environment)."""
        return f"postgresql+psycopg://atr@127.0.0.1:{self.postgres_port}/{database}"


def load_secrets(folder: Path) -> dict[str, str]:
    """The folder's secrets, generated on first use (secrets.json, readable by root only).
    Keys a folder lacks (one made by an older version) are added; existing ones are kept:
    PostgreSQL's data and MLflow's accounts were made with them."""
    path = folder / "secrets.json"
    found = json.loads(path.read_text()) if path.is_file() else {}
    made = {k: secrets.token_urlsafe(24) for k in SECRET_KEYS}
    made.update({f"{role}_key": "atr_" + secrets.token_urlsafe(32) for role in KEY_ROLES})
    made["s3_access_key"] = "atr" + secrets.token_hex(8)  # S3 keys: plain characters
    if set(made) <= set(found):
        return found
    folder.mkdir(parents=True, exist_ok=True)
    merged = {**made, **found}
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(json.dumps(merged, indent=2))
    return merged


class Stack:
    """Start / stop every server of `spec`; `env()` is what a client process needs."""

    def __init__(self, spec: StackSpec, detached: bool = False) -> None:
        """detached: the servers outlive this process (`atr stack up`), see atr.stack.launch."""
        self.spec, self.detached = spec, detached
        self.dir = Path(spec.dir).resolve()
        self.secrets = load_secrets(self.dir)
        self.postgres = PostgresServer(self.dir / "postgres", spec.postgres_port, user="atr",
                                       password=self.secrets["pg_password"], database="atr")
        self.objects = ObjectStore(self.dir / "s3", spec.s3_port, self.secrets["s3_access_key"],
                                   self.secrets["s3_secret_key"], spec.buckets,
                                   detached=detached)
        self.mlflow: ChildGroup | None = None
        self.replicas = [Replica(f"replica{i}", self.dir / f"replica{i}", port,
                                 self.replica_overrides(), self.replica_env(), detached)
                         for i, port in enumerate(spec.replica_ports, 1)]
        self.balancer = Balancer(self.dir, spec.balancer_port, spec.stats_port,
                                 spec.replica_ports, detached)

    # -- what clients need ---------------------------------------------------------------
    def server_env(self) -> dict[str, str]:
        """The servers' secrets: PostgreSQL's password (libpq's PGPASSWORD), the S3 key."""
        return {"PGPASSWORD": self.secrets["pg_password"], **self.objects.env()}

    def replica_env(self) -> dict[str, str]:
        """A replica's: the servers' secrets and MLflow's reader account (READ only)."""
        return {**self.server_env(), **tracking.credentials(self.secrets, "reader")}

    def reviewer_env(self) -> dict[str, str]:
        """The reviewer account, as ATR_REVIEWER_USERNAME/PASSWORD (stack.env): a reviewer
        approves with MLFLOW_TRACKING_USERNAME/PASSWORD set to these (docs/stack.md)."""
        return {k.replace("MLFLOW_TRACKING", "ATR_REVIEWER"): v
                for k, v in tracking.credentials(self.secrets, "reviewer").items()}

    def env(self) -> dict[str, str]:
        """A client's: the servers' secrets, the jobs' MLflow account (service: registers,
        no approval), the reviewer's (ATR_REVIEWER_*), the API keys `atr line` reads."""
        return {**self.server_env(), "ATR_PATHS": "stack",  # every atr command: paths=stack
                **tracking.credentials(self.secrets, "service"), **self.reviewer_env(),
                **{f"ATR_{role.upper()}_KEY": self.secrets[f"{role}_key"]
                   for role in KEY_ROLES if role != "scanner"},
                "ATR_SCAN_KEY": self.secrets["scanner_key"]}

    @property
    def keys_file(self) -> Path:
        return self.dir / "keys.yaml"

    def issue_keys(self) -> None:
        """The API keys (hashes) into the shared keys file; the tokens stay in secrets.json."""
        from atr.demo_service import issue_keys

        issue_keys(self.keys_file, self.spec.scanners, "stack",
                   tokens={role: self.secrets[f"{role}_key"] for role in KEY_ROLES})

    def replica_overrides(self) -> list[str]:
        s = self.spec
        return [f"paths.prediction_db={s.store_url()}", f"paths.image_store={s.image_store}",
                f"paths.tracking_uri={s.mlflow_url}", f"paths.registry_uri={s.mlflow_url}",
                f"paths.keys_file={self.keys_file}",
                f"registry.model_name={s.model_name}", "serve.poll_seconds=2",
                *s.replica_overrides]

    def urls(self) -> dict[str, Any]:
        s = self.spec
        return {"balancer": self.balancer.url, "stats": self.balancer.stats_url,
                "replicas": [r.url for r in self.replicas], "mlflow": s.mlflow_url,
                "s3": self.objects.url, "prediction_db": s.store_url(),
                "mlflow_db": s.store_url("mlflow"),
                "mlflow_auth_db": s.store_url(tracking.AUTH_DATABASE),
                # role -> account; the passwords are in secrets.json only
                "mlflow_accounts": {"admin": tracking.ADMIN, **tracking.ACCOUNTS},
                "secrets": str(self.dir / "secrets.json"), "image_store": s.image_store,
                "mlflow_artifacts": f"s3://{s.mlflow_bucket}/artifacts",
                "dvc_remote": s.dvc_remote, "env_file": str(self.dir / "stack.env")}

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> Stack:
        """Everything, in dependency order; on any failure what started is stopped."""
        from atr.store.migrations import upgrade

        try:
            self.postgres.start()
            if self.detached:  # the launcher stops its server at our exit; up must not
                import atexit

                from atr.stack import postgres

                atexit.unregister(postgres._stop_at_exit)
            self.postgres.create_database("mlflow")
            self.postgres.create_database(tracking.AUTH_DATABASE)
            upgrade(self.postgres.url())  # replicas refuse a store not at head
            self.objects.start()
            self.start_mlflow()
            self.issue_keys()
            for replica in self.replicas:
                replica.start(self.spec.start_timeout_s)
            self.balancer.start()
        except BaseException:
            self.stop()
            raise
        self.write_files()
        return self

    def start_mlflow(self) -> None:
        """MLflow with login (atr.stack.tracking), then the accounts and the model."""
        s = self.spec
        command = tracking.prepare_server(s, self.dir, self.secrets)
        self.mlflow = launch(command, self.dir / "mlflow.log",
                             env=tracking.launch_env({**os.environ, **self.server_env()}),
                             cwd=self.dir, detached=self.detached)
        wait_http(f"{s.mlflow_url}/health", self.spec.start_timeout_s, self.mlflow,
                  self.dir / "mlflow.log")
        tracking.create_accounts(s.mlflow_url, self.secrets, s.model_name)

    def stop(self) -> None:
        """Reverse order: nothing keeps writing to a store that is going away."""
        self.balancer.stop()
        for replica in self.replicas:
            replica.stop()
        if self.mlflow is not None:
            self.mlflow.stop()
            self.mlflow = None
        self.objects.stop()
        self.postgres.stop()

    def write_files(self) -> None:
        (self.dir / "stack.json").write_text(json.dumps(self.urls(), indent=2) + "\n")
        env = self.dir / "stack.env"
        env.touch(mode=0o600)
        env.write_text("# source it: set -a; . runtime/stack/stack.env; set +a\n" + "".join(
            f"{k}={v}\n" for k, v in sorted(self.env().items())))
        (self.dir / "spec.json").write_text(json.dumps(asdict(self.spec), default=str,
                                                       indent=2) + "\n")

    def processes(self) -> list[dict[str, Any]]:
        """name, pid (a process group leader), stop signal, start time: for `atr stack down`
        in another process. PostgreSQL's pid is its own postmaster.pid."""
        out = []
        pg_pid = self.dir / "postgres" / "postmaster.pid"
        if pg_pid.is_file():
            out.append(("postgres", int(pg_pid.read_text().split()[0]), "SIGINT"))
        out.append(("s3", self.objects.child.pid if self.objects.child else None, "SIGTERM"))
        out.append(("mlflow", self.mlflow.pid if self.mlflow else None, "SIGTERM"))
        out += [(r.name, r.child.pid if r.child else None, "SIGTERM") for r in self.replicas]
        out.append(("haproxy", self.balancer.child.pid if self.balancer.child else None,
                    "SIGTERM"))
        return [{"name": n, "pid": p, "signal": sig, "started": proc_start_time(p)}
                for n, p, sig in out if p is not None]


def proc_start_time(pid: int) -> int | None:
    """The kernel's start time of `pid` (field 22 of /proc/pid/stat): a recorded pid that
    now names another process is not ours to signal."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def wait_http(url: str, timeout_s: float, child: ChildGroup | None = None,
              log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child is not None and child.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log and log.is_file() else ""
            raise RuntimeError(f"{url}: the server exited ({child.poll()}):\n{tail}")
        try:
            if httpx.get(url, timeout=2.0, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} not answering 200 after {timeout_s:.0f} s")

