"""The key registry file and `atr keys` (serving/keys.py, atr/keys/job.py), and the token
bucket (serving/rate_limit.py): real files, the real CLI entry point, no service."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from atr.cli import main
from atr.config import compose
from serving.keys import KeyFileError, KeyRegistry, add_key, digest, read_keys, revoke_key
from serving.rate_limit import RateLimit, RateLimiter, retry_after
from serving.settings import settings_from_cfg


def _wait_until(predicate, timeout_s: float = 3.0) -> float:  # noqa: ANN001
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout_s, "not seen in time"
        time.sleep(0.02)
    return time.monotonic() - start


def test_issue_stores_only_the_hash_and_lookup_finds_the_role(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    token, record = add_key(path, "belt-3", "scanner", ("parcel_160kv", "parcel_140kv"))
    assert token.startswith("atr_") and len(token) > 40  # 32 random bytes
    text = path.read_text()
    assert token not in text and digest(token) in text
    assert path.stat().st_mode & 0o777 == 0o600
    doc = yaml.safe_load(text)
    assert doc["keys"][0] == {"name": "belt-3", "role": "scanner",
                              "scanners": ["parcel_160kv", "parcel_140kv"],
                              "sha256": digest(token), "created_at": record.created_at}
    registry = KeyRegistry(path)
    assert registry.lookup(token) == record
    assert registry.lookup(token + "x") is None and registry.lookup("") is None


def test_names_are_unique_and_roles_checked(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    add_key(path, "office-7", "inspection")
    with pytest.raises(ValueError, match="'office-7' exists"):
        add_key(path, "office-7", "analyst")
    with pytest.raises(ValueError, match="names its scanners"):
        add_key(path, "belt", "scanner")
    with pytest.raises(ValueError, match="names its scanners"):
        add_key(path, "ops", "operator", ("parcel_160kv",))
    with pytest.raises(LookupError, match="no key named 'nope'"):
        revoke_key(path, "nope")
    assert [k.name for k in read_keys(path).keys] == ["office-7"]


def test_rotation_is_seen_within_a_second_without_restart(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    old, _ = add_key(path, "belt-old", "scanner", ("S1",))
    replicas = [KeyRegistry(path), KeyRegistry(path)]  # two services sharing the file
    assert all(r.lookup(old) for r in replicas)
    new, _ = add_key(path, "belt-new", "scanner", ("S1",))
    revoke_key(path, "belt-old")
    for registry in replicas:
        seen = _wait_until(lambda r=registry: r.lookup(new) is not None
                           and r.lookup(old) is None)
        assert seen <= 1.5
    assert all(r.reloads == 2 for r in replicas)  # one stat a second, one read per change


def test_a_broken_file_refuses_every_key_until_fixed(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    token, _ = add_key(path, "a", "analyst")
    registry = KeyRegistry(path)
    assert registry.lookup(token)
    good = path.read_text()
    path.write_text(good.replace("role: analyst", "role: boss"))  # a bad hand edit
    _wait_until(lambda: _raises(registry, token))
    with pytest.raises(KeyFileError, match=r"keys\.0\.role"):
        registry.lookup(token)
    path.write_text(good + "\n")  # fixed (the size changed: reloaded)
    _wait_until(lambda: not _raises(registry, token) and registry.lookup(token) is not None)


def _raises(registry: KeyRegistry, token: str) -> bool:
    try:
        registry.lookup(token)
    except KeyFileError:
        return True
    return False


def test_no_file_means_no_keys(tmp_path: Path) -> None:
    registry = KeyRegistry(tmp_path / "missing.yaml")
    assert registry.configured and registry.lookup("anything") is None
    assert not KeyRegistry(None).configured


def test_the_serve_config_points_at_the_runtime_keys_file(tmp_path: Path) -> None:
    settings = settings_from_cfg(compose("serve", [f"paths.root={tmp_path}"]))
    assert settings.keys_file == str(tmp_path / "keys.yaml")
    assert settings.rate_limits["scanner"] == RateLimit(200.0, 400)
    with pytest.raises(Exception, match="api_keys"):  # the old settings are gone, named
        settings_from_cfg(compose("serve", [f"paths.root={tmp_path}", "+serve.api_keys=[a]"]))


def test_atr_keys_cli_prints_the_key_once(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = f"paths.root={tmp_path}"
    assert main(["keys", "issue", "--role", "scanner", "--scanner", "parcel_160kv",
                 "--scanner=belt 2", "--name", "belt-3", root]) == 0
    issued = json.loads(capsys.readouterr().out)
    token = issued["key"]
    assert issued["issued"]["scanners"] == ["parcel_160kv", "belt 2"]
    assert KeyRegistry(tmp_path / "keys.yaml").lookup(token).name == "belt-3"
    assert main(["keys", "list", root]) == 0
    listed = capsys.readouterr().out
    assert "belt-3" in listed and token not in listed and digest(token) not in listed
    assert main(["keys", "issue", "--role", "boss", "--name", "x", root]) == 1
    assert "keys.role" in capsys.readouterr().err
    assert main(["keys", "revoke", "belt-3", root]) == 0
    assert KeyRegistry(tmp_path / "keys.yaml").lookup(token) is None


def test_token_bucket_refuses_past_the_burst_then_refills() -> None:
    limiter, limit = RateLimiter(), RateLimit(rate=20.0, burst=3)
    assert [limiter.take("k", limit) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.take("k", limit)
    assert 0 < wait <= 0.05 + 1e-6 and retry_after(wait) == "1"
    assert limiter.take("other", limit) == 0.0  # per key
    time.sleep(0.06)
    assert limiter.take("k", limit) == 0.0
    assert limiter.take("k", limit, n=4) == float("inf")  # never fits the bucket


def test_importing_serving_leaves_pillow_guard_alone() -> None:
    """Image.MAX_IMAGE_PIXELS keeps Pillow's default after the service's imports (a fresh
    process: the test session may have imported anything)."""
    code = ("from PIL import Image; d = Image.MAX_IMAGE_PIXELS; import serving.app, "
            "atr.package.preprocess, atr.package.dual_energy; "
            "assert Image.MAX_IMAGE_PIXELS == d == int(1024 * 1024 * 1024 // 4 // 3), "
            "Image.MAX_IMAGE_PIXELS")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2], timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
