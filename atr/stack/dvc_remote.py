"""The DVC remote on the stack's object store: an `s3://` remote with the endpoint and the
key, written to the checkout's git-ignored `.dvc/config.local` (a loopback address and a
secret belong to this machine, not to the repository's `.dvc/config`).

    dvc push -r stack        # data/ to s3://atr-dvc/data on the stack's SeaweedFS
    dvc pull -r stack        # and back, into any checkout with the same remote
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def dvc_binary() -> str:
    return str(Path(sys.executable).parent / "dvc")


def configure_remote(repo: str | Path, name: str, url: str, endpoint: str, access_key: str,
                     secret_key: str) -> None:
    """Add (or replace) remote `name` -> `url` at `endpoint` in `repo`'s config.local."""
    steps = [["remote", "add", "--local", "--force", name, url],
             ["remote", "modify", "--local", name, "endpointurl", endpoint],
             ["remote", "modify", "--local", name, "access_key_id", access_key],
             ["remote", "modify", "--local", name, "secret_access_key", secret_key]]
    for args in steps:
        done = subprocess.run([dvc_binary(), *args], cwd=repo, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"dvc {' '.join(args[:4])} in {repo} failed:\n{done.stderr}")
