"""Label Studio as a real server on loopback: its own venv, its credentials, start, health.

Label Studio pins its own Django, pydantic and boto stack, which clash with the
platform's, so it lives in a virtual environment of its own (`labels.labelstudio.venv`,
`.venv-labelstudio`, git-ignored), made on demand with `pip install label-studio==<pin>`.
Only its `label-studio` executable is used; ATR talks to it over HTTP with
label-studio-sdk (main venv).

Credentials: on the first start ATR makes the admin account (an email, a random
password and a random 40-hex API token) and keeps them in `credentials.json` (0600) in
the server's data folder; Label Studio creates the user from `--username/--password/
--user-token` when its database is new. Label Studio 1.2x turns legacy API tokens off
for new organisations (personal access tokens, JWT, instead); the first start passes
`--enable-legacy-api-token` so the token in the file works as the SDK's `api_key` with no
refresh round trip. (The SDK 2.x also accepts a personal access token there:
LABEL_STUDIO_API_KEY.)

Start flags chosen for a cheap start: SQLite in the data folder, no browser, no PyPI
version check, loopback only. Local-files serving is on with the document root set to
`image_root`, so tasks reference images in the image store where they lie (no copy).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from filelock import FileLock
from omegaconf import DictConfig

from atr.processes import ChildGroup, run_foreground

log = logging.getLogger(__name__)
START_TIMEOUT_S = 300.0  # a new database runs ~200 migrations: ~70 s on a loaded 2-core box


class LabelStudioError(RuntimeError):
    """Label Studio could not be installed, started or reached; the message says why."""


@dataclass(frozen=True)
class Credentials:
    email: str
    password: str
    token: str

    def as_dict(self) -> dict[str, str]:
        return {"email": self.email, "password": self.password, "token": self.token}


def load_credentials(path: str | Path) -> Credentials:
    p = Path(path)
    try:
        raw = json.loads(p.read_text())
        return Credentials(str(raw["email"]), str(raw["password"]), str(raw["token"]))
    except FileNotFoundError:
        raise LabelStudioError(
            f"{p}: no Label Studio credentials; start the server once (`atr labels server`, "
            "make labelstudio-up) or set LABEL_STUDIO_API_KEY") from None
    except (ValueError, KeyError) as e:
        raise LabelStudioError(f"{p}: not a credentials file ({e!r})") from None


def ensure_credentials(path: str | Path) -> Credentials:
    """The admin's credentials, made (0600) on the first call."""
    p = Path(path)
    if p.is_file():
        return load_credentials(p)
    creds = Credentials("analyst-admin@atr.local", secrets.token_urlsafe(18),
                        secrets.token_hex(20))
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(creds.as_dict(), f, indent=1)
    return creds


def ensure_venv(venv: str | Path, version: str) -> Path:
    """`<venv>/bin/label-studio`, installing label-studio==version first if missing."""
    venv = Path(venv)
    exe = venv / "bin" / "label-studio"
    stamp = venv / f".label-studio-{version}"
    if exe.is_file() and stamp.is_file():
        return exe
    venv.parent.mkdir(parents=True, exist_ok=True)
    # Two processes at once (make labelstudio-up beside the tests, two test workers) must
    # not pip into one venv together: the second waits, then finds the stamp.
    with FileLock(f"{venv}.lock"):
        if not (exe.is_file() and stamp.is_file()):
            _install(venv, version, stamp)
    return exe


def _install(venv: Path, version: str, stamp: Path) -> None:
    started = time.monotonic()
    log.info("installing label-studio==%s into %s (a minute or two)", version, venv)
    fresh = not (venv / "bin/python").is_file()
    steps = [[sys.executable, "-m", "venv", str(venv)]] if fresh else []
    steps.append([str(venv / "bin/python"), "-m", "pip", "install", "-q",
                  f"label-studio=={version}"])
    for cmd in steps:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            raise LabelStudioError(f"{' '.join(cmd[:4])} failed: {done.stderr.strip()[-2000:]}")
    stamp.touch()
    log.info("label-studio %s installed in %.0f s", version, time.monotonic() - started)


def server_env(data_dir: Path, document_root: Path) -> dict[str, str]:
    return {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),  # not ~/.local/share/label-studio
        "DJANGO_DB": "sqlite",
        "LATEST_VERSION_CHECK": "false",
        "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(document_root),
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",  # accounts only by invitation
    }


def server_command(exe: Path, data_dir: Path, port: int, creds: Credentials) -> list[str]:
    # `--opt=value`: a random password may begin with "-", which argparse would otherwise
    # take for an option (label-studio start: "--password: expected one argument").
    return [str(exe), "start", "--no-browser", "--data-dir", str(data_dir), "--port", str(port),
            "--internal-host", "127.0.0.1", f"--username={creds.email}",
            f"--password={creds.password}", f"--user-token={creds.token}",
            "--enable-legacy-api-token", "--log-level", "WARNING"]


def wait_healthy(url: str, child: ChildGroup | None = None,
                 timeout_s: float = START_TIMEOUT_S) -> float:
    """Seconds until GET /health answers 200; LabelStudioError if the child died first."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if child is not None and child.poll() is not None:
            raise LabelStudioError(f"label-studio exited with code {child.poll()} while starting")
        try:
            if httpx.get(f"{url}/health", timeout=2, trust_env=False).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise LabelStudioError(f"Label Studio at {url} not healthy after {timeout_s:.0f} s")


@dataclass
class LabelStudioServer:
    """One Label Studio process group (tests, `atr labels server`)."""

    venv: Path
    version: str
    data_dir: Path
    document_root: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def credentials_path(self) -> Path:
        return self.data_dir / "credentials.json"

    def prepare(self) -> tuple[list[str], dict[str, str], Credentials]:
        exe = ensure_venv(self.venv, self.version)
        creds = ensure_credentials(self.credentials_path)
        return (server_command(exe, self.data_dir, self.port, creds),
                server_env(self.data_dir, self.document_root), creds)

    def start(self, log_path: Path) -> ChildGroup:
        cmd, env, _ = self.prepare()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        out = log_path.open("ab")
        child = ChildGroup(cmd, env=env, cwd=self.data_dir, stdout=out, stderr=out, grace_s=10)
        child.start()
        try:
            wait_healthy(self.url, child)
        except BaseException:
            child.stop()
            raise
        return child


def from_config(cfg: DictConfig) -> LabelStudioServer:
    lc = cfg.labels
    ls = lc.labelstudio
    return LabelStudioServer(Path(str(ls.venv)).absolute(), str(ls.version),
                             Path(str(ls.data_dir)).absolute(),
                             Path(str(lc.image_root)).absolute(), int(ls.port))


def serve(cfg: DictConfig) -> dict[str, Any]:
    """`atr labels server`: Label Studio in the foreground until Ctrl-C / SIGTERM."""
    server = from_config(cfg)
    server.data_dir.mkdir(parents=True, exist_ok=True)
    cmd, env, creds = server.prepare()
    print(f"Label Studio: {server.url}\n  login:    {creds.email}\n"
          f"  password: {creds.password}  (kept in {server.credentials_path}, 0600)\n"
          f"  images:   local files under {server.document_root}\n(Ctrl-C stops it)",
          flush=True)
    code = run_foreground(cmd, env=env, cwd=server.data_dir, grace_s=10)
    return {"url": server.url, "exit_code": code}
