"""The tests mirror the code: every room of atr/ (a package folder) and serving/ has its
tests/<room>/ folder with at least one test module, so a reader finds a room's tests
where its code is, and a new room cannot arrive untested unnoticed."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"
# Top-level job modules (atr/train.py, demo.py, cli.py...) are tested in tests/jobs and the
# end-to-end DVC pipelines in tests/pipeline: folders with no code room of their own.
NOT_ROOMS = {"jobs", "pipeline", "helpers", "browser", "benchmarks"}


def code_rooms() -> list[str]:
    """atr's sub-packages (folders with an __init__.py) and the serving package."""
    rooms = sorted(p.parent.name for p in (REPO / "atr").glob("*/__init__.py"))
    return [*rooms, "serving"]


def test_the_rooms_are_found() -> None:
    # guards the check below against a glob that silently finds nothing
    assert {"policy", "registry", "package", "serving"} <= set(code_rooms())


@pytest.mark.parametrize("room", code_rooms())
def test_each_code_room_has_a_test_folder(room: str) -> None:
    folder = TESTS / room
    assert folder.is_dir(), f"atr/{room} or {room}/ has no tests/{room}/ folder"
    assert list(folder.glob("test_*.py")), f"tests/{room}/ holds no test_*.py module"


def top_level_modules() -> set[str]:
    """atr/<name>.py: a folder may mirror one of them too (tests/config for atr/config.py)."""
    return {p.stem for p in (REPO / "atr").glob("*.py") if p.stem != "__init__"}


def test_every_test_folder_is_a_room_or_a_known_suite() -> None:
    # a folder named after no room (a typo, a room since renamed) is a misplaced test
    folders = {p.name for p in TESTS.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    stray = folders - set(code_rooms()) - NOT_ROOMS - top_level_modules()
    assert not stray, f"tests/{sorted(stray)} mirror no room of atr/ or serving/"
