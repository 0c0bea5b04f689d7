"""Progress bars for long imports: on stderr, only for a person watching a terminal.

Disabled when stderr is not a TTY (CI logs, DVC stages, pipes stay clean) or with
`importer.progress=false`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def bars_enabled(wanted: bool) -> bool:
    return bool(wanted) and sys.stderr.isatty()


def progress(items: Iterable[T], *, total: int, desc: str, wanted: bool) -> Iterator[T]:
    """`items`, with a bar on stderr when `bars_enabled(wanted)`."""
    yield from tqdm(
        items, total=total, desc=desc, unit="image", file=sys.stderr,
        disable=not bars_enabled(wanted), leave=False, dynamic_ncols=True,
    )
