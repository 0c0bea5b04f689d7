"""Every profile in conf/scanner loads and renders; profiles differ the way they should."""

from __future__ import annotations

import numpy as np
import pytest

from atr.config import conf_dir
from atr.xray import ScannerProfile, XraySimulator, load_profile
from atr.xray.beam_hardening import physics_tables

PROFILES = ("parcel_160kv", "parcel_140kv", "letter_80kv")


def test_all_profiles_present_and_distinct():
    files = sorted(p.stem for p in (conf_dir() / "scanner").glob("*.yaml"))
    assert set(PROFILES) <= set(files)
    profiles = [load_profile(p) for p in PROFILES]
    assert [p.id for p in profiles] == list(PROFILES)
    assert len({(p.tube.kvp, p.pixel_pitch_mm, p.blur_sigma_px) for p in profiles}) == 3
    assert profiles[2].tube.kvp <= 80


@pytest.mark.parametrize("pid", PROFILES)
def test_profile_loads_and_renders(pid, taxonomy, load_mix):
    profile = ScannerProfile.from_yaml(conf_dir() / "scanner" / f"{pid}.yaml")
    assert ScannerProfile.from_dict(profile.to_dict()) == profile  # round trip
    sim = XraySimulator(profile, taxonomy, load_mix(), image_size=96)
    item = sim.render(5)
    assert item.low.shape == item.high.shape == (96, 96) and item.low.dtype == np.uint16
    assert item.rgb.shape == (96, 96, 3) and item.rgb.dtype == np.uint8
    assert item.meta["scanner_id"] == pid
    assert item.low.min() < 60000  # something attenuates


def test_letter_profile_gives_more_paper_contrast():
    a_letter = physics_tables(load_profile("letter_80kv")).attenuation("paper", 0.2)
    a_parcel = physics_tables(load_profile("parcel_160kv")).attenuation("paper", 0.2)
    assert a_letter[0] > 1.3 * a_parcel[0]  # low channel: what shows sheets of paper
    assert a_letter[1] > a_parcel[1]


def test_pitch_sets_apparent_size(taxonomy, slab, load_mix):
    mix = load_mix()
    fine = XraySimulator(load_profile("letter_80kv"), taxonomy, mix, image_size=64)
    coarse = XraySimulator(load_profile("parcel_160kv"), taxonomy, mix, image_size=64)
    assert fine._composer.k > coarse._composer.k  # pixels per cm


def test_ageing_changes_the_output(taxonomy, slab, load_mix):
    profile = load_profile("parcel_160kv")
    mix = load_mix()
    new = XraySimulator(profile, taxonomy, mix, image_size=64)
    old = XraySimulator(profile.with_ageing(3), taxonomy, mix, image_size=64)
    stack = slab("polyethylene", 4.0)
    lo_new, _, _ = new.render_thickness(stack, seed=3)
    lo_old, _, _ = old.render_thickness(stack, seed=3)
    assert lo_old.mean() < lo_new.mean() - 500  # gain drift: darker overall
    air = slice(0, 12)
    assert lo_old[air, air].astype(float).std() > lo_new[air, air].astype(float).std()


def test_air_calibration_cancels_install_gains(taxonomy, slab, load_mix):
    """A channel gain mismatch at installation must not change what the scanner reports:
    without the air calibration a 3 % mismatch turned paper green on the 140 kV profile."""
    from dataclasses import replace

    profile = load_profile("parcel_140kv")
    unit = replace(profile, gain_low=1.0, gain_high=1.0)
    skewed = replace(profile, gain_low=0.85, gain_high=1.15)
    stack = slab("paper", 3.0)
    rendered = [XraySimulator(p, taxonomy, load_mix(), image_size=64).render_thickness(stack, 3)
                for p in (unit, skewed)]
    for channel in (0, 1):
        a, b = (r[channel].astype(float).mean() for r in rendered)
        assert abs(a - b) < 0.002 * 65535, (channel, a, b)
    # ...while the gain lost since installation (ageing) is still seen.
    aged = XraySimulator(skewed.with_ageing(3), taxonomy, load_mix(), image_size=64)
    assert aged.render_thickness(stack, 3)[0].mean() < rendered[1][0].mean() - 500


def test_ageing_override_through_dict():
    cfg = load_profile("parcel_160kv").to_dict()
    cfg["ageing"]["years"] = 3
    assert ScannerProfile.from_dict(cfg).ageing.years == 3


def test_bad_profile_is_rejected():
    cfg = load_profile("parcel_160kv").to_dict()
    cfg["tube"]["kvp"] = 5
    with pytest.raises(ValueError):
        ScannerProfile.from_dict(cfg)
