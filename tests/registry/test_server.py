"""`atr mlflow`'s command line, and (slow) real servers on loopback: the tracking server
and `mlflow models serve` answering both input forms of the registered pyfunc."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from atr.package.preprocess import PreprocessSpec, decode_image
from atr.registry.approve import approve
from atr.registry.pyfunc_model import encode_image_file
from atr.registry.register import register_package
from atr.registry.server import server_command


def test_server_command_points_at_runtime_store(registry_cfg) -> None:
    cfg = registry_cfg("mlflow", "mlflow.port=5123")
    cmd = server_command(cfg)
    assert cmd[1:4] == ["-m", "mlflow", "server"]
    flags = dict(zip(cmd[4::2], cmd[5::2], strict=False))
    assert flags["--backend-store-uri"] == cfg.paths.tracking_uri
    assert flags["--registry-store-uri"] == cfg.paths.registry_uri
    artifacts = Path(cfg.paths.mlflow_artifacts).resolve().as_uri()
    assert flags["--default-artifact-root"] == flags["--artifacts-destination"] == artifacts
    assert flags["--host"] == "127.0.0.1" and flags["--port"] == "5123"
    assert "--allowed-hosts" not in cmd  # MLflow's default list already admits loopback


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise AssertionError(f"{url} did not answer in {seconds} s")


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


@pytest.mark.slow
def test_tracking_server_and_model_server_on_loopback(registry_cfg, new_package) -> None:
    cfg = registry_cfg("mlflow", f"mlflow.port={_free_port()}")
    pkg = new_package(cfg)
    register_package(pkg, registry_cfg("register", f"register.eval_dir={pkg / 'artifacts/eval'}"))
    approve(registry_cfg("approve"), version=1, by="alice")
    # `mlflow models serve` execs `uvicorn` from PATH: the venv's bin must be on it.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "PATH": path, "MLFLOW_TRACKING_URI": cfg.paths.tracking_uri,
           "MLFLOW_REGISTRY_URI": cfg.paths.registry_uri}

    tracking = subprocess.Popen(server_command(cfg), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{cfg.mlflow.port}"
        _wait(f"{base}/health", tracking)
        with urllib.request.urlopen(f"{base}/api/2.0/mlflow/registered-models/alias"
                                    "?name=atr-screening&alias=champion") as r:
            assert json.loads(r.read())["model_version"]["version"] == "1"
    finally:
        tracking.terminate()
        tracking.wait(30)

    port = _free_port()
    serve = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/atr-screening@champion",
         "--env-manager", "local", "--host", "127.0.0.1", "-p", str(port), "-w", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(f"http://127.0.0.1:{port}/ping", serve)
        image = pkg / "artifacts" / "eval" / "leak_vs_auto_clear.png"
        url = f"http://127.0.0.1:{port}/invocations"
        by_bytes = _post(url, {"dataframe_split": {"columns": ["image_b64"],
                                                   "data": [[encode_image_file(image)]]}})
        tensor = PreprocessSpec.load(pkg / "preprocess.json").prepare_batch([decode_image(image)])
        by_tensor = _post(url, {"inputs": {"image": tensor.tolist()}})
        row_b, row_t = by_bytes["predictions"][0], by_tensor["predictions"][0]
        assert row_b["decision"] == row_t["decision"]
        assert row_b["paper_only"] == pytest.approx(row_t["paper_only"], rel=1e-5)
    finally:
        serve.terminate()
        serve.wait(30)
