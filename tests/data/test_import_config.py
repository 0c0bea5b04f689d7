"""The `importer` config: the README's class_map override works for every format."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from atr.config import compose
from atr.data.importers import FORMATS, import_dataset
from atr.data.importers.settings import ImporterSettings
from atr.data.manifest import read_dataset

REPO = Path(__file__).resolve().parents[2]
README_MAP = "importer.class_map={Gun: firearm, Knife: knife}"
SIXRAY_DEFAULTS = {"Wrench": "tool", "Pliers": "tool", "Scissors": "tool", "Hammer": "tool"}


def settings(*overrides: str) -> ImporterSettings:
    cfg = compose("import", ["importer.source=/nowhere", *overrides])
    return ImporterSettings.from_config(cfg.importer, cfg.paths.data_dir)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_readme_class_map_override_composes_for_every_format(fmt):
    s = settings(f"importer={fmt}", README_MAP)
    extra = SIXRAY_DEFAULTS if fmt == "sixray" else {}
    assert s.class_map == {"Gun": "firearm", "Knife": "knife", **extra}
    # the forms that worked before still do, and null entries drop a class
    assert settings(f"importer={fmt}", "++importer.class_map={Baton: null}").class_map == {
        "Baton": None, **(SIXRAY_DEFAULTS | {"Gun": "firearm", "Knife": "knife"}
                          if fmt == "sixray" else {})
    }


def test_class_map_updates_and_can_replace_sixrays_defaults():
    assert settings("importer=sixray", "importer.class_map={Scissors: knife}").class_map[
        "Scissors"
    ] == "knife"
    assert settings(
        "importer=sixray", "importer.default_class_map=null", README_MAP
    ).class_map == {"Gun": "firearm", "Knife": "knife"}
    assert settings("importer=voc", "importer.split_map={holdout: test}").split_map[
        "holdout"
    ] == "test"


def test_readme_command_line_through_the_atr_entry_point(tmp_path, image_factory):
    """The README's shell quoting, through a real shell and the installed `atr` command,
    on a format whose own map is empty (the case that used to fail)."""
    src, out = tmp_path / "src", tmp_path / "out"
    image_factory(src / "Gun" / "a", "gray16")
    image_factory(src / "Knife" / "b", "rgb_jpeg")
    line = (
        f"{shlex.quote(str(REPO / '.venv' / 'bin' / 'atr'))} data import importer=folder "
        f"importer.source={shlex.quote(str(src))} importer.out={shlex.quote(str(out))} "
        "importer.class_map='{Gun: firearm, Knife: knife}'"
    )
    done = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    m = read_dataset(out).manifest.set_index("item_id")
    assert m.loc["folder/Gun/a.png", "firearm"] == 1 and m.loc["folder/Knife/b.jpg", "knife"] == 1


def test_class_map_given_as_a_list_is_refused_with_the_key(tmp_path, image_factory):
    image_factory(tmp_path / "src" / "Gun" / "a", "gray8")
    cfg = compose("import", ["importer=folder", f"importer.source={tmp_path / 'src'}",
                             "importer.class_map=[Gun, firearm]"])
    with pytest.raises(ValueError, match=r"importer.class_map: expected a mapping"):
        import_dataset(cfg)
