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


def _flags(cmd: list[str]) -> dict[str, str]:
    assert cmd[1:3] == ["-m", "atr.registry.mlflow_launch"]  # `mlflow server` + its env
    options = cmd[3:]
    return dict(zip(options[::2], options[1::2], strict=False))


def test_server_command_points_at_runtime_store(registry_cfg) -> None:
    cfg = registry_cfg("mlflow", "mlflow.port=5123")
    cmd = server_command(cfg)
    flags = _flags(cmd)
    # secure by default: the auth app, its files in the runtime (never on the command line)
    assert flags["--auth-dir"] == str(Path(cfg.mlflow.auth.dir).resolve())
    assert flags["--backend-store-uri"] == cfg.paths.tracking_uri
    assert flags["--registry-store-uri"] == cfg.paths.registry_uri
    artifacts = Path(cfg.paths.mlflow_artifacts).resolve().as_uri()
    assert flags["--default-artifact-root"] == flags["--artifacts-destination"] == artifacts
    assert flags["--host"] == "127.0.0.1" and flags["--port"] == "5123"
    assert "--allowed-hosts" not in cmd  # MLflow's default list already admits loopback
    assert "--job-execution" not in cmd  # MLflow's GenAI job runner: 7 processes we never use


def test_server_command_for_the_distributed_stack(registry_cfg) -> None:
    pg = "postgresql+psycopg://mlflow@127.0.0.1:5432/mlflow"
    cfg = registry_cfg("mlflow", f"paths.tracking_uri={pg}",
                       "mlflow.artifacts_destination=s3://atr/mlflow",
                       "mlflow.auth.enabled=false")
    flags = _flags(server_command(cfg))
    assert "--auth-dir" not in flags
    assert flags["--backend-store-uri"] == flags["--registry-store-uri"] == pg
    assert flags["--default-artifact-root"] == flags["--artifacts-destination"] == \
        "s3://atr/mlflow"


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
    cfg = registry_cfg("mlflow", f"mlflow.port={_free_port()}", "mlflow.auth.enabled=false")
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


def test_atr_mlflow_stopped_with_sigterm_leaves_no_process(tmp_path: Path) -> None:
    """`atr mlflow` as a user runs it (defaults: auth on, one worker), then SIGTERM to the
    `atr` process alone, as `kill PID` or a service manager sends it: the server and every
    process it started must be gone (before: MLflow and seven workers kept running)."""
    import signal

    import psutil
    from helpers.mlflow_server import MlflowServer
    from helpers.registry import registry_at

    server = MlflowServer(registry_at(tmp_path / "runtime")).start()
    try:
        atr = psutil.Process(server.group.pid)
        tree = atr.children(recursive=True)
        assert tree, "atr mlflow started no server?"
        started = time.monotonic()
        os.kill(atr.pid, signal.SIGTERM)
        gone, alive = psutil.wait_procs([atr, *tree], timeout=15)
        elapsed = time.monotonic() - started
        assert not alive, [(p.pid, p.cmdline()[:4]) for p in alive]
        assert server.group.wait(5) == 0  # a requested stop is a clean exit
        print(f"{len(tree)} descendants stopped {elapsed:.1f} s after SIGTERM")
    finally:
        server.stop()
