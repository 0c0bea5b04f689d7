"""Replay phases without a service: the plan's keys, the seeded order, the manifest's truth
and the refusal of a dataset lacking what the model reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from atr.data.manifest import read_dataset
from atr.data.synth import make_dataset
from atr.line.parcels import Parcel
from atr.line.plan import phases_from_cfg
from atr.line.replay import replay_order, replay_parcels, resolve_counts
from atr.policy.taxonomy import default_taxonomy


@pytest.fixture(scope="module")
def pseudo_colour_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset without the raw pair (save_raw=False): a dual-energy model cannot read it.
    No calib split (an empty split to replay)."""
    return make_dataset(tmp_path_factory.mktemp("pc") / "ds", count=30, image_size=32, seed=4,
                        splits={"train": 0.5, "val": 0.2, "test": 0.3})


def test_replay_phases_are_parsed_and_checked() -> None:
    phases = phases_from_cfg({"count": 10, "phases": [
        {"scanner": "parcel_160kv", "count": 4},
        {"dataset": "data/imports/hums", "split": "calib", "count": 7, "offset": 3,
         "scanner_id": "hums-1"},
        {"dataset": "data/imports/hums"}]})
    sim, rep, once = phases
    assert not sim.replay and sim.count == 4
    assert (rep.replay, rep.dataset, rep.split, rep.count, rep.offset, rep.scanner_id) == (
        True, "data/imports/hums", "calib", 7, 3, "hums-1")
    assert rep.scanner == "hums-1" and rep.mix == "replay"
    assert (once.split, once.count, once.scanner_id) == ("test", 0, None)  # the split once
    with pytest.raises(ValueError, match=r"line.phases\[0\]: unknown key\(s\) \['mix'\] for a"
                                         " replay"):
        phases_from_cfg({"phases": [{"dataset": "x", "mix": "default"}]})
    with pytest.raises(ValueError, match="offset must be >= 0"):
        phases_from_cfg({"phases": [{"dataset": "x", "offset": -1}]})
    with pytest.raises(ValueError, match="dataset is empty"):
        phases_from_cfg({"phases": [{"dataset": ""}]})


def test_replay_order_cycles_with_fresh_shuffles_and_continues_by_offset() -> None:
    order = replay_order(5, 12, seed=7)
    assert sorted(order[:5]) == sorted(order[5:10]) == list(range(5))  # every row per cycle
    assert order[:5] != order[5:10]  # a new shuffle per cycle (seeded: fixed)
    assert order == replay_order(5, 12, seed=7) and order != replay_order(5, 12, seed=8)
    # chunks with growing offsets are one replay
    assert replay_order(5, 4, 7) + replay_order(5, 8, 7, offset=4) == order


def test_verdicts_claim_only_what_the_archive_knows() -> None:
    tax = default_taxonomy()
    threats_complete = frozenset(tax.threats)
    knife = Parcel("a", "s", 0, b"", {**dict.fromkeys(tax.names, 0), "knife": 1}, 0,
                   no_threat=0, known=threats_complete)
    benign = Parcel("b", "s", 0, b"", dict.fromkeys(tax.names, 0), 0, no_threat=1,
                    known=threats_complete)
    unknown = Parcel("c", "s", 0, b"", dict.fromkeys(tax.names, 0), 0, no_threat=0,
                     known=frozenset())
    assert knife.verdict_labels(tax) == {**dict.fromkeys(tax.threats, 0), "knife": 1,
                                         "no_threat": 0}
    assert benign.verdict_labels(tax) == {**dict.fromkeys(tax.threats, 0), "no_threat": 1}
    assert unknown.verdict_labels(tax) == {}  # nothing to report: no feedback is sent
    assert benign.low_risk_truth("no_threat", tax) == 1
    assert benign.low_risk_truth("paper_only", tax) == 0  # not known to be paper only
    assert unknown.low_risk_truth("no_threat", tax) == 0  # 0 = not known (fail-safe)
    simulated = Parcel("d", "s", 0, b"", {**dict.fromkeys(tax.names, 0), "book": 1}, 1)
    assert simulated.verdict_labels(tax)["paper_only"] == 1
    assert simulated.low_risk_truth("no_threat", tax) == 1  # complete truth: derived


def test_replay_reads_the_manifest_and_refuses_a_missing_column(
        pseudo_colour_only: Path, tiny_dataset: Path) -> None:
    tax = default_taxonomy()
    [phase] = resolve_counts(phases_from_cfg({"phases": [
        {"dataset": str(tiny_dataset), "split": "test", "scanner_id": "hums-1"}]}))
    test = read_dataset(tiny_dataset).split("test")
    assert phase.count == len(test)  # count 0: the split once
    ids = [f"r-{i}" for i in range(phase.count)]
    parcels = replay_parcels(phase, ids, tax, "raw", seed=0)
    rows = test.set_index("item_id")
    assert sorted(p.source_item for p in parcels) == sorted(rows.index)  # each row once
    for p in parcels:
        row = rows.loc[p.source_item]
        assert p.png == (tiny_dataset / row["raw"]).read_bytes()  # the file's own bytes
        assert p.scanner_id == "hums-1" and p.content_type == "image/png"
        assert (p.paper_only, p.no_threat) == (row["paper_only"], row["no_threat"])
        assert p.labels == {c: int(row[c]) for c in tax.names} and p.known == frozenset(
            tax.names)  # a simulator dataset labels every class

    [no_raw] = phases_from_cfg({"phases": [{"dataset": str(pseudo_colour_only), "count": 5}]})
    with pytest.raises(ValueError, match=r"items have no 'raw' file \(first: .*importer="
                                         r"dual_energy") as err:
        replay_parcels(no_raw, [f"x-{i}" for i in range(5)], tax, "raw", 0, "m v1")
    assert str(pseudo_colour_only) in str(err.value) and "m v1" in str(err.value)
    assert len(replay_parcels(no_raw, ["y"], tax, "image", 0)) == 1  # a colour model reads it
    [empty] = phases_from_cfg({"phases": [{"dataset": str(pseudo_colour_only),
                                           "split": "calib", "count": 3}]})
    assert read_dataset(pseudo_colour_only).split("calib").empty
    with pytest.raises(ValueError, match=r"split calib\): no items in that split"):
        replay_parcels(empty, ["z"] * 3, tax, "image", 0)
