"""A small on-disk cache for physics tables (attenuation, spectra).

spekpy and xraydb are slow to query compared with rendering one image, and
DataLoader workers are separate processes: a content-keyed ``.npz`` file lets
every process after the first load a table instead of recomputing it. The
cache is an optimisation only; any failure to read or write falls back to
computing the table, so read-only homes and offline machines still work.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def cache_dir() -> Path:
    """$ATR_CACHE_DIR, else ~/.cache/atr/xray, else the system temp folder."""
    env = os.environ.get("ATR_CACHE_DIR")
    if env:
        return Path(env)
    home = Path.home() / ".cache" / "atr" / "xray"
    try:
        home.mkdir(parents=True, exist_ok=True)
        if os.access(home, os.W_OK):
            return home
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / "atr-xray-cache"


def content_key(kind: str, spec: Any) -> str:
    """A stable key from a JSON-able description of what the table depends on."""
    text = json.dumps(spec, sort_keys=True, default=str)
    return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:20]}"


def cached_array(kind: str, spec: Any, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """Load the array keyed by (kind, spec) from disk, or compute and store it."""
    path = cache_dir() / f"{content_key(kind, spec)}.npy"
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        pass
    arr = np.asarray(compute())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename: parallel workers never read a half-written file.
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npy")
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, arr, allow_pickle=False)
        os.replace(tmp, path)
    except OSError:
        pass
    return arr
