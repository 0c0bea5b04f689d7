"""Physics: attenuation ordering, dual-energy material separation, K-edge, beam hardening."""

from __future__ import annotations

import numpy as np
import pytest

from atr.xray import load_profile
from atr.xray.beam_hardening import physics_tables
from atr.xray.materials import MATERIAL_INDEX, MATERIAL_NAMES, mu_table
from atr.xray.spectrum import fine_spectrum


@pytest.fixture(scope="module")
def tables():
    return physics_tables(load_profile("parcel_160kv"))


def test_thicker_and_denser_is_darker_in_both_channels(tables):
    t_thin, t_thick = (tables.attenuation("polyethylene", t) for t in (1.0, 5.0))
    assert np.all(t_thick > t_thin)
    a_paper, a_steel = tables.attenuation("paper", 1.0), tables.attenuation("steel", 1.0)
    assert np.all(a_steel > 5 * a_paper)


def test_narcotics_powder_is_denser_than_paper(tables):
    assert np.all(tables.attenuation("cocaine", 1.0) > 1.2 * tables.attenuation("paper", 1.0))


def _thickness_for_high(tables, material: str, target: float) -> float:
    grid = np.geomspace(1e-3, 100, 2000).astype(np.float32)
    a_high = tables.attenuation(material, grid)[1]
    return float(np.interp(target, a_high, grid))


def test_steel_and_polyethylene_separate_at_equal_high_transmission(tables):
    target = 0.8  # -ln T_high: the two look alike in a single-energy image
    t_pe = _thickness_for_high(tables, "polyethylene", target)
    t_fe = _thickness_for_high(tables, "steel", target)
    a_pe, a_fe = tables.attenuation("polyethylene", t_pe), tables.attenuation("steel", t_fe)
    assert a_pe[1] == pytest.approx(a_fe[1], rel=0.02)
    ratio_pe, ratio_fe = a_pe[0] / a_pe[1], a_fe[0] / a_fe[1]
    assert ratio_fe > 1.5 * ratio_pe, (ratio_pe, ratio_fe)


def test_beam_hardening_lowers_the_ratio_of_thick_steel(tables):
    thin, thick = tables.attenuation("steel", 0.05), tables.attenuation("steel", 1.5)
    assert thick[0] / thick[1] < thin[0] / thin[1]  # the beam hardens through metal


def test_lead_k_edge_in_mu_table(tables):
    e = tables.energies_kev
    below, above = np.flatnonzero(e < 88.0)[-1], np.flatnonzero(e > 88.0)[0]
    assert e[above] - e[below] < 10
    mu_pb = tables.mu[MATERIAL_INDEX["lead"]]
    assert mu_pb[above] > 3 * mu_pb[below]  # the K-edge jump
    mu_fe = tables.mu[MATERIAL_INDEX["steel"]]
    assert mu_fe[above] < mu_fe[below]  # no edge for iron: monotone there


def test_mu_table_matches_xraydb_and_is_cached():
    import xraydb

    energies = (40.0, 100.0)
    table = mu_table(("aluminium",), energies)
    assert table[0] == pytest.approx(xraydb.material_mu("Al", [40e3, 100e3], 2.7), rel=1e-4)
    assert mu_table(("aluminium",), energies) is table
    assert table[0, 0] / table[0, 1] == pytest.approx(3.3, rel=0.05)


def test_spectrum_depends_on_kv_and_filtration():
    p160, p80 = load_profile("parcel_160kv"), load_profile("letter_80kv")
    k160, f160 = fine_spectrum(p160.tube)
    k80, _ = fine_spectrum(p80.tube)
    assert k160.max() > 150 and k80.max() < 80
    mean_160 = (k160 * f160).sum() / f160.sum()
    assert 50 < mean_160 < 90


def test_transmission_of_air_is_one_and_channels_are_weighted(tables):
    air = np.zeros((len(MATERIAL_NAMES), 4, 4), dtype=np.float32)
    assert np.all(tables.transmission(air) == 1.0)
    assert np.allclose(tables.weights.sum(axis=0), 1.0, atol=1e-5)
    mean_e = (tables.weights * tables.energies_kev[:, None]).sum(axis=0)
    assert mean_e[1] > mean_e[0] + 15  # the Cu filter makes the high channel harder
