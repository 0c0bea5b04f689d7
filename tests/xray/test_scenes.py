"""Labels are honest: labelled iff placed; paper-only means paper only; threats are boxed."""

from __future__ import annotations

import dataclasses

import pytest

from atr.xray import GENERATOR_VERSION, XraySimulator, load_profile

N = 40


@pytest.fixture(scope="module")
def items(sim):
    return [sim.render(s) for s in range(N)]


def test_labels_cover_taxonomy_and_meta(items, taxonomy):
    for it in items:
        assert list(it.labels) == taxonomy.names
        assert set(it.labels.values()) <= {0, 1}
        assert it.meta["generator"] == GENERATOR_VERSION and it.meta["seed"] >= 0
        assert it.paper_only == taxonomy.paper_only(it.labels)
    kinds = {it.meta["scene_kind"] for it in items}
    assert kinds == {"paper_only", "goods", "threat"}


def test_paper_only_scenes_have_only_paper(items, taxonomy):
    paper = [it for it in items if it.meta["scene_kind"] == "paper_only"]
    assert paper
    for it in paper:
        assert it.paper_only == 1
        assert not any(it.labels[c] for c in taxonomy.goods + taxonomy.threats)
        assert it.boxes == []


def test_threat_scenes_list_the_threat_with_a_box(items, taxonomy):
    threat_items = [it for it in items if it.meta["scene_kind"] == "threat"]
    assert threat_items
    for it in threat_items:
        present = [c for c in taxonomy.threats if it.labels[c]]
        assert present and it.paper_only == 0
        boxed = {b["label"] for b in it.boxes}
        assert set(present) <= boxed
    for it in items:  # every box is a present class, inside the image
        for b in it.boxes:
            x0, y0, x1, y1 = b["xyxy"]
            assert it.labels[b["label"]] == 1
            assert 0 <= x0 < x1 <= it.low.shape[1] and 0 <= y0 < y1 <= it.low.shape[0]


def test_concealment_in_books_labels_book_and_threat(taxonomy, load_mix):
    mix = dataclasses.replace(load_mix(), p_threat=1.0, p_paper_only=0.0, p_concealed=1.0,
                              tricks={"in_book": 1.0}, threat_weights={"narcotics": 1.0,
                              "firearm": 0.0, "knife": 0.0, "ammunition": 0.0,
                              "lithium_battery": 0.0})
    sim = XraySimulator(load_profile("parcel_160kv"), taxonomy, mix, image_size=96)
    for seed in range(5):
        it = sim.render(seed)
        assert "narcotics:in_book" in it.meta["concealment"]
        assert it.labels["narcotics"] == 1 and it.labels["book"] == 1 and it.paper_only == 0
        assert any(b["label"] == "narcotics" for b in it.boxes)


def test_default_mix_keeps_hard_cases(load_mix):
    mix = load_mix()
    assert mix.p_concealed > 0 and mix.p_small_threat > 0 and mix.clutter_items[1] >= 5
    assert mix.tricks.get("in_book", 0) > 0 and mix.tricks.get("under_clutter", 0) > 0


def test_drift_mixes_load_and_differ(load_mix):
    default, seasonal, conceal = load_mix(), load_mix("seasonal"), load_mix("concealment")
    assert seasonal.goods_weights["electronics"] > default.goods_weights["electronics"]
    assert seasonal.p_paper_only < default.p_paper_only
    assert conceal.p_concealed > default.p_concealed


def test_new_taxonomy_class_reuses_a_family(taxonomy, load_mix):
    from atr.policy.taxonomy import Taxonomy

    cfg = taxonomy.to_dict()
    cfg["classes"].append({"name": "perfume", "group": "goods", "shape": "bottle"})
    tax = Taxonomy.from_dict(cfg)
    sim = XraySimulator(load_profile("parcel_160kv"), tax, load_mix(), image_size=64)
    assert any(sim.render(s).labels["perfume"] for s in range(30))


def test_unknown_shape_or_class_is_rejected(taxonomy, load_mix):
    from atr.policy.taxonomy import Taxonomy

    cfg = taxonomy.to_dict()
    cfg["classes"].append({"name": "drone", "group": "goods", "shape": "no_such_shape"})
    with pytest.raises(ValueError, match="no_such_shape"):
        XraySimulator(load_profile("parcel_160kv"), Taxonomy.from_dict(cfg), load_mix())
    bad_mix = dataclasses.replace(load_mix(), goods_weights={"clothes": 1.0})
    with pytest.raises(ValueError, match="clothes"):
        XraySimulator(load_profile("parcel_160kv"), taxonomy, bad_mix)
