"""atr/demo_service.py, the one launcher of `atr serve` out of process (the demo, the
archive drills and the tests' helpers.service.Server all start the service through it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from atr.config import compose
from atr.demo_service import LoopbackService, ServiceProcess


def test_service_process_serves_the_callers_runtime_and_model(tmp_path: Path) -> None:
    cfg = compose("serve", [f"paths.root={tmp_path}", f"paths.data_dir={tmp_path / 'd'}",
                            f"paths.artifacts_dir={tmp_path / 'a'}",
                            "registry.model_name=atr-test"])
    proc = ServiceProcess(cfg, api_key="k-1", poll_seconds=0.5)
    # the child must read the same stores as the caller, and nothing else decides them
    assert proc.cmd[-6:] == [
        "serve.poll_seconds=0.5", "registry.model_name=atr-test", f"paths.root={tmp_path}",
        f"paths.data_dir={tmp_path / 'd'}", f"paths.artifacts_dir={tmp_path / 'a'}",
        f"serve.port={proc.port}"]
    assert proc.cmd[1:4] == ["-m", "atr.cli", "serve"]
    assert proc.env["ATR_API_KEYS"] == "k-1" and proc.log == tmp_path / "serve.log"
    assert proc.url == f"http://127.0.0.1:{proc.port}" and proc.proc is None  # not started


def test_a_child_that_exits_is_reported_with_its_log(tmp_path: Path) -> None:
    # an unknown override makes `atr serve` exit at once: start() must say so, not wait
    service = LoopbackService([f"paths.root={tmp_path}", "serve.no_such_key=1"], "k",
                              tmp_path / "serve.log", start_timeout_s=60)
    with pytest.raises(RuntimeError, match="atr serve exited") as failure:
        service.start()
    assert "no_such_key" in str(failure.value)  # the log tail names the cause
    assert service.proc is not None and service.proc.poll() is not None
