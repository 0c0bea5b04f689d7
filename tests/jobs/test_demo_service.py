"""atr/demo_service.py, the one launcher of `atr serve` out of process (the demo, the
archive drills and the tests' helpers.service.Server all start the service through it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from atr.config import compose
from atr.demo_service import LoopbackService, ServiceProcess
from serving.keys import ROLES, KeyRegistry


def test_service_process_serves_the_callers_runtime_and_model(tmp_path: Path) -> None:
    cfg = compose("serve", [f"paths.root={tmp_path}", f"paths.data_dir={tmp_path / 'd'}",
                            f"paths.artifacts_dir={tmp_path / 'a'}",
                            "registry.model_name=atr-test"])
    proc = ServiceProcess(cfg, scanners=["belt-1", "belt-2"], poll_seconds=0.5)
    # the child must read the same stores as the caller, and nothing else decides them
    keys_file = tmp_path / "keys.yaml"
    assert proc.cmd[4:10] == [
        "serve.poll_seconds=0.5", "registry.model_name=atr-test", f"paths.root={tmp_path}",
        f"paths.data_dir={tmp_path / 'd'}", f"paths.artifacts_dir={tmp_path / 'a'}",
        f"serve.keys_file={keys_file}"]
    assert proc.cmd[1:4] == ["-m", "atr.cli", "serve"] and proc.cmd[-1] == f"serve.port={proc.port}"
    assert proc.log == tmp_path / "serve.log"
    assert proc.url == f"http://127.0.0.1:{proc.port}" and proc.proc is None  # not started
    # one fresh key per role in the runtime's keys file, stored hashed, never in clear
    registry = KeyRegistry(keys_file)
    for role in ROLES:
        token = getattr(proc.keys, role)
        record = registry.lookup(token)
        assert record is not None and record.role == role and token not in keys_file.read_text()
    assert registry.lookup(proc.keys.scanner).scanners == ("belt-1", "belt-2")
    assert "ATR_API_KEYS" not in proc.env


def test_a_child_that_exits_is_reported_with_its_log(tmp_path: Path) -> None:
    # an unknown override makes `atr serve` exit at once: start() must say so, not wait
    service = LoopbackService([f"paths.root={tmp_path}", "serve.no_such_key=1"],
                              tmp_path / "serve.log", start_timeout_s=60)
    with pytest.raises(RuntimeError, match="atr serve exited") as failure:
        service.start()
    assert "no_such_key" in str(failure.value)  # the log tail names the cause
    assert service.proc is not None and service.proc.poll() is not None
