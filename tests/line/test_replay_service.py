"""`atr line` replaying a dataset folder against a real `atr serve` serving a dual-energy
model whose low risk is `no_threat`: raw pairs sent, decisions = the policy of the scores,
the manifest's truth in the records, verdicts that claim only what the archive knows."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from helpers.decisions import as_response, assert_served_decision
from helpers.packages import no_threat_package
from helpers.real_formats import export_dataset
from helpers.registry import registry_at
from helpers.service import TEST_KEYS, Server
from helpers.stores import store_rows

from atr.config import compose
from atr.data.importers import import_dataset
from atr.data.manifest import read_dataset
from atr.data.synth import make_dataset
from atr.line.run import simulate
from atr.package.onnx_scorer import OnnxScorer
from atr.policy.taxonomy import default_taxonomy
from atr.store.image_store import ImageStore


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory, tiny_dataset: Path) -> Path:
    """A small dual-energy "archive": simulated parcels exported as _lo/_hi PNG pairs in
    class folders and imported with importer=dual_energy (threat labels complete only)."""
    tmp = tmp_path_factory.mktemp("archive")
    source, overrides = export_dataset(tiny_dataset, "dual_energy_png", tmp / "export")
    return import_dataset(compose("import", [*overrides, f"importer.out={tmp / 'hums'}",
                                             "importer.name=hums", "importer.progress=false",
                                             "importer.scanner_id=hums-line"]))


@pytest.fixture(scope="module")
def dual_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    package = no_threat_package(tmp_path_factory.mktemp("pkg") / "package", seed=5)
    registry = registry_at(tmp_path_factory.mktemp("replay-runtime"))
    registry.register(package)
    registry.set_alias("champion", "1")
    server = Server(registry, ["serve.poll_seconds=1"]).start()
    try:
        yield server, package
    finally:
        server.stop()


def _line(url: str, *extra: str):
    return compose("line", [f"line.url={url}", "line.ready_timeout_s=20", "line.rate=null",
                            "line.concurrency=3", *TEST_KEYS.line_overrides(), *extra])


def test_replay_sends_raw_pairs_and_decisions_follow_the_policy(dual_service, archive) -> None:
    server, package = dual_service
    scorer = OnnxScorer(package)
    model = httpx.get(f"{server.url}/v1/model", timeout=10).json()
    assert model["input"] == {"representation": "dual_energy", "column": "raw"}

    test = read_dataset(archive).split("test").set_index("item_id")
    n = 2 * len(test)  # each held-out scan sent twice (cycled)
    summary = simulate(_line(server.url, "line.item_prefix=rp",
                             f"line.phases=[{{dataset: '{archive}', split: test, count: {n}, "
                             "scanner_id: hums-1}]", "line.feedback=true"))
    records = summary["records"]
    assert summary["sent_column"] == "raw" and summary["overall"]["answered"] == n
    assert summary["phases"][0]["dataset"] == str(archive)
    assert Counter(r["source_item"] for r in records) == dict.fromkeys(test.index, 2)
    assert {r["scanner_id"] for r in records} == {"hums-1"}

    stored = {r["item_id"]: r for r in store_rows(server)
              if r["item_id"].startswith("rp-")}
    images = ImageStore(server.registry.root / "images")
    for r in records:
        row, pred = test.loc[r["source_item"]], stored[r["item_id"]]
        raw = (archive / row["raw"]).read_bytes()
        assert images.get(pred["image_ref"]) == raw  # the raw pair's bytes were sent
        scores = json.loads(pred["scores"])
        got = np.array([scores[o] for o in scorer.outputs])
        # the service decoded the raw pair with the model's own preprocessing
        expected, _ = scorer.score_images([scorer.preprocess.decode(raw)])
        np.testing.assert_allclose(got, expected[0], atol=1e-5)
        assert r["decision"] == pred["decision"]
        assert_served_decision(as_response(pred), server.registry)
        # the truth is the manifest's, under the served model's definition
        assert (r["low_risk"], r["low_risk_item"]) == ("no_threat", int(row["no_threat"]))
        assert r["paper_only"] == 0  # an import with threat labels only claims no paper

    # verdicts: the threat classes (complete) and no_threat, nothing about other classes
    tax = default_taxonomy()
    routed = {r["item_id"]: r for r in records if r["decision"] in ("INSPECT", "REVIEW")}
    verdicts = {f["item_id"]: json.loads(f["labels"]) for f in store_rows(server, "feedback")
                if f["item_id"].startswith("rp-")}
    assert set(verdicts) == set(routed) and summary["feedback"]["no_truth"] == 0
    for item_id, labels in verdicts.items():
        row = test.loc[routed[item_id]["source_item"]]
        assert {k: labels[k] for k in tax.threats} == {t: int(row[t]) for t in tax.threats}
        assert labels["no_threat"] == int(row["no_threat"])
        assert not set(labels) & (set(tax.paper) | set(tax.goods))
        # paper_only only when the verdict settles it: a threat rules it out
        assert labels.get("paper_only", 0) == 0
        assert ("paper_only" in labels) == (row["no_threat"] == 0)


def test_a_dataset_without_the_models_column_is_refused_before_sending(
        dual_service, tmp_path: Path) -> None:
    server, _ = dual_service
    colour_only = make_dataset(tmp_path / "colour", count=12, image_size=32, seed=9)
    before = len(store_rows(server))
    with pytest.raises(ValueError, match=r"line.phases\[1\].*reads 'raw'"):
        simulate(_line(server.url, "line.item_prefix=refused", "line.image_size=32",
                       "line.render_workers=1",
                       f"line.phases=[{{scanner: parcel_160kv, count: 3}}, "
                       f"{{dataset: '{colour_only}', count: 4}}]"))
    assert len(store_rows(server)) == before  # nothing was sent, not even phase 0


def test_simulated_parcels_are_sent_as_raw_pairs_to_a_dual_energy_model(dual_service) -> None:
    server, package = dual_service
    summary = simulate(_line(server.url, "line.item_prefix=simraw", "line.image_size=48",
                             "line.render_workers=1", "line.count=4"))
    assert summary["sent_column"] == "raw"
    decisions = [r["decision"] for r in summary["records"]]
    assert "ERROR" not in decisions
    stored = [r for r in store_rows(server) if r["item_id"].startswith("simraw-")]
    # a pseudo-colour PNG would be unreadable for this model (INSPECT image_unreadable)
    assert stored and all(r["reason"] != "image_unreadable" for r in stored)
    for row in stored:
        assert_served_decision(as_response(row), server.registry)
    raw = ImageStore(server.registry.root / "images").get(stored[0]["image_ref"])
    assert OnnxScorer(package).preprocess.decode(raw).shape == (48, 48, 2)
