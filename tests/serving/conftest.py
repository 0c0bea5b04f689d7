"""A real MLflow SQLite registry holding tiny ONNX model versions, and a real uvicorn
`atr serve` process on a free loopback port, for the serving tests."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import mlflow
import pytest
from mlflow.tracking import MlflowClient

from atr.config import compose

REPO = Path(__file__).resolve().parents[2]
NAME = "atr-screening"
INPUT_SIZE = 32


def export_tiny_onnx(path: Path, n_outputs: int, seed: int) -> Path:
    """A 2-layer CNN with the contract's names: input `image`, outputs `scores`, `embedding`
    (same builder as tests/registry/conftest.py: a real network, exported by torch)."""
    import torch
    from torch import nn

    torch.manual_seed(seed)

    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, 8, 3, stride=4), nn.ReLU(),
                                          nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.head = nn.Linear(8, n_outputs)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            emb = self.features(x)
            return torch.sigmoid(self.head(emb)), emb

    torch.onnx.export(
        Tiny().eval(), (torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE),), str(path),
        input_names=["image"], output_names=["scores", "embedding"],
        dynamic_axes={"image": {0: "n"}, "scores": {0: "n"}, "embedding": {0: "n"}},
        dynamo=False,
    )
    return path


def build_package(out: Path, seed: int = 0, representation: str = "pseudo_colour") -> Path:
    """The files `atr evaluate` leaves behind (package + eval metrics), with package.json."""
    from atr.package.preprocess import PreprocessSpec
    from atr.policy.decision import Policy
    from atr.policy.taxonomy import default_taxonomy
    from atr.registry.package_files import package_checksums

    outputs = default_taxonomy().model_outputs
    out.mkdir(parents=True, exist_ok=True)
    export_tiny_onnx(out / "model.onnx", len(outputs), seed)
    PreprocessSpec(input_size=INPUT_SIZE, representation=representation).save(
        out / "preprocess.json")
    (out / "taxonomy.json").write_text(json.dumps(default_taxonomy().to_dict()))
    Policy(outputs=outputs, clear_threshold=0.5,
           inspect_thresholds=dict.fromkeys(outputs[1:], 0.5)).save(out / "policy.json")
    (out / "reference.parquet").write_bytes(b"PAR1 placeholder for drift reference")
    eval_dir = out / "artifacts" / "eval"
    eval_dir.mkdir(parents=True, exist_ok=True)
    (eval_dir / "metrics.json").write_text(json.dumps({"test": {"auto_clear_rate": 0.4}}))
    (out / "package.json").write_text(
        json.dumps({"name": f"tiny-{seed}", "sha256": package_checksums(out)}))
    return out


@dataclass
class Registry:
    """An MLflow SQLite store in a runtime folder, with helpers to add and alias versions."""

    root: Path
    overrides: list[str]
    packages: dict[int, Path] = field(default_factory=dict)

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.root / 'mlflow' / 'mlflow.db'}"

    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def register(self, package: Path) -> str:
        from atr.registry.register import register_package

        cfg = compose("register", [*self.overrides,
                                   f"register.eval_dir={package / 'artifacts' / 'eval'}"])
        try:
            return str(register_package(package, cfg).version)
        finally:
            mlflow.set_tracking_uri(None)
            mlflow.set_registry_uri(None)

    def set_alias(self, alias: str, version: str) -> None:
        self.client().set_registered_model_alias(NAME, alias, version)


@pytest.fixture(scope="session")
def package_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_package(tmp_path_factory.mktemp("pkg") / "package", seed=0)


def _registry(root: Path) -> Registry:
    overrides = [f"paths.root={root}", f"paths.data_dir={root / 'data'}",
                 f"paths.artifacts_dir={root / 'artifacts'}"]
    return Registry(root=root, overrides=overrides)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory, package_template: Path) -> Registry:
    """Two registered versions of the tiny package; `champion` -> 1, `challenger` -> 2.
    Shared by the session: a test that moves an alias puts it back."""
    reg = _registry(tmp_path_factory.mktemp("runtime"))
    for _ in range(2):
        reg.register(package_template)
    reg.set_alias("champion", "1")
    return reg


@pytest.fixture(scope="session")
def blank_mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite DB with its schema and no model (its migrations take seconds)."""
    reg = _registry(tmp_path_factory.mktemp("blank"))
    (reg.root / "mlflow").mkdir(parents=True)
    reg.client().search_registered_models()
    return reg.root / "mlflow" / "mlflow.db"


@pytest.fixture
def empty_registry(tmp_path: Path, blank_mlflow_db: Path) -> Registry:
    reg = _registry(tmp_path / "runtime")
    (reg.root / "mlflow").mkdir(parents=True)
    shutil.copy(blank_mlflow_db, reg.root / "mlflow" / "mlflow.db")
    return reg


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """`atr serve` in a subprocess (what an operator runs), on a free loopback port."""

    registry: Registry
    extra: list[str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait_ready: bool = True, timeout: float = 60.0) -> Server:
        self.registry.root.mkdir(parents=True, exist_ok=True)
        self.log = self.registry.root / f"serve-{self.port}-{time.monotonic_ns()}.log"
        args = [sys.executable, "-m", "atr.cli", "serve", *self.registry.overrides,
                f"serve.port={self.port}", *self.extra]
        env = {**os.environ, "ATR_API_KEYS": "test-key-1,test-key-2"}
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=log,
                                         stderr=subprocess.STDOUT)
        self.wait("/ready" if wait_ready else "/health", timeout)
        return self

    def wait(self, path: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.url + path, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.url}{path} not 200 after {timeout}s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log else ""

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    """Factory: serve(registry, *overrides) starts `atr serve`; stopped after the test."""
    started: list[Server] = []

    def start(registry: Registry, *extra: str, wait_ready: bool = True) -> Server:
        server = Server(registry, list(extra)).start(wait_ready=wait_ready)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def png_bytes(colour: tuple[int, int, int] = (255, 140, 0), size: tuple[int, int] = (48, 40)
              ) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def store_rows(registry: Registry, db: str = "predictions/predictions.db") -> list[dict]:
    """Every stored prediction, read straight from the SQLite file."""
    import sqlite3

    with sqlite3.connect(registry.root / db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM predictions ORDER BY id")]




def settings_for(registry: Registry, **overrides: object):
    """Settings for an in-process app on this registry's runtime folder."""
    from serving.settings import Settings

    base: dict[str, object] = dict(
        prediction_db=f"sqlite:///{registry.root / 'predictions' / 'predictions.db'}",
        image_store=str(registry.root / "images"), tracking_uri=registry.tracking_uri,
        download_dir=str(registry.root / "serve" / "models"), poll_seconds=0.2,
        api_keys=("inproc-key",))
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


@contextmanager
def thread_server(settings) -> Iterator[tuple[str, object]]:
    """create_app(settings) under a real uvicorn.Server in a thread, on a free port."""
    import threading

    import uvicorn

    from serving.app import create_app

    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("in-process uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(15)
