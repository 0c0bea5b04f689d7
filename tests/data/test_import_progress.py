"""Import progress bars: on a terminal's stderr only, and off with importer.progress=false."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time
from pathlib import Path

ATR = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "atr")


def import_cmd(src: Path, out: Path, *extra: str) -> list[str]:
    return [ATR, "data", "import", "importer=folder", f"importer.source={src}",
            f"importer.out={out}", "importer.name=t", *extra]


def stderr_on_a_terminal(cmd: list[str], timeout: float = 240) -> str:
    """Run `cmd` with stderr on a pseudo-terminal; return what it wrote there."""
    master, slave = pty.openpty()
    # a fresh pty is 0x0; tqdm fits its bar to the width, so give it a terminal's 24x100
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=slave)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        assert proc.wait(timeout=max(1.0, deadline - time.monotonic())) == 0, chunks
    finally:
        os.close(master)
    return b"".join(chunks).decode(errors="replace")


def test_bars_on_a_terminal_not_in_pipes_and_not_when_disabled(tmp_path, image_factory):
    src = tmp_path / "src"
    for k in range(3):
        image_factory(src / "knife" / f"s{k}", "gray8")
    shown = stderr_on_a_terminal(import_cmd(src, tmp_path / "a"))
    assert "checking t:" in shown and "writing t:" in shown and "image" in shown
    off = stderr_on_a_terminal(import_cmd(src, tmp_path / "b", "importer.progress=false"))
    assert "checking t" not in off and "writing t" not in off
    piped = subprocess.run(import_cmd(src, tmp_path / "c"), capture_output=True, text=True,
                           timeout=240)
    assert piped.returncode == 0 and "checking t" not in piped.stderr
    assert all((tmp_path / d / "manifest.parquet").is_file() for d in "abc")
