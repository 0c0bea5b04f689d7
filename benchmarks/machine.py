"""The machine a benchmark ran on, for its JSON: CPU model and flags, cores, memory, load.

Figures are only comparable with the machine named: v1 trained 2.7x slower on an AVX2
machine than on the AVX-512 one the first figures came from.
"""

from __future__ import annotations

import os
import platform
import subprocess
from typing import Any


def describe() -> dict[str, Any]:
    info: dict[str, Any] = {"cpus": os.cpu_count(), "platform": platform.platform(),
                            "load_1min": round(os.getloadavg()[0], 2)}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        lscpu = ""
    fields = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
    info["cpu_model"] = fields.get("Model name", "").strip() or platform.processor()
    flags = set(fields.get("Flags", "").split())
    info["avx2"] = "avx2" in flags
    info["avx512"] = any(f.startswith("avx512") for f in flags)
    try:
        with open("/proc/meminfo") as fh:
            kb = int(fh.readline().split()[1])
        info["memory_gib"] = round(kb / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return info
