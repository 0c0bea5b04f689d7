"""Drift drills: simulated parcels scored by a real model package, as serving would score
them (ONNX scores + embedding, image statistics, the package policy's decision).

The drift benchmark and the closed-loop demo use these streams to check that the monitor
sees a scanner change, an ageing detector or a new class mix, and stays quiet otherwise.
Each stream is cached as one .npz (scores, embeddings, stats, truth): rendering is the
slow part, scoring them again with another policy is not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from atr.monitor.drift_rule import DriftRule, StreamingRule
from atr.monitor.drift_scores import DriftMethods, window_scores
from atr.package.image_stats import STAT_NAMES

_SIM = None


def _init_worker(scanner: str, mix: str, ageing_years: float, image_size: int) -> None:
    global _SIM
    import yaml
    from threadpoolctl import threadpool_limits

    from atr.config import conf_dir
    from atr.policy.taxonomy import default_taxonomy
    from atr.xray import ClassMix, XraySimulator, load_profile

    # one BLAS thread per simulator process (see atr.data.synth: pools fight otherwise)
    threadpool_limits(1)
    with open(conf_dir() / "mix" / f"{mix}.yaml") as fh:
        mix_cfg = ClassMix.from_dict(yaml.safe_load(fh))
    profile = load_profile(scanner)
    if ageing_years:
        profile = profile.with_ageing(ageing_years)
    _SIM = XraySimulator(profile, default_taxonomy(), mix_cfg, image_size=image_size)


def _render(seed: int) -> tuple[np.ndarray, dict[str, int], int]:
    assert _SIM is not None
    item = _SIM.render(seed)
    return item.rgb, item.labels, item.paper_only


def simulate_stream(
    package: str | Path,
    out: str | Path,
    *,
    count: int,
    seed: int,
    scanner: str = "parcel_160kv",
    mix: str = "default",
    ageing_years: float = 0.0,
    image_size: int = 96,
    embedding_dims: int | None = 256,
    workers: int = 2,
) -> Path:
    """Render and score `count` items of one condition into `out` (.npz); kept if present.

    `embedding_dims`: keep the first dims only, as serving stores them (serve.embedding_dims).
    """
    from atr.package.image_stats import image_stats
    from atr.package.onnx_scorer import OnnxScorer

    out = Path(out)
    if out.is_file():
        return out
    scorer = OnnxScorer(package, intra_op_threads=1)
    outputs = scorer.outputs
    seeds = [int(s) for s in np.random.SeedSequence([seed, 0xD81F7]).generate_state(count)]
    scores, emb, stats, truth, batch = [], [], [], [], []

    def flush() -> None:
        s, e = scorer.score_images(batch)
        scores.append(s)
        emb.append(e[:, :embedding_dims] if embedding_dims else e)
        batch.clear()

    with ProcessPoolExecutor(workers, initializer=_init_worker,
                             initargs=(scanner, mix, ageing_years, image_size)) as pool:
        for rgb, labels, paper_only in pool.map(_render, seeds, chunksize=32):
            batch.append(rgb)
            item_stats = image_stats(rgb)
            stats.append([item_stats[n] for n in STAT_NAMES])
            truth.append([paper_only, *[labels[t] for t in outputs[1:]]])
            if len(batch) == 64:
                flush()
        if batch:
            flush()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".partial.npz")
    np.savez_compressed(tmp, scores=np.concatenate(scores), embedding=np.concatenate(emb),
                        stats=np.asarray(stats, np.float32), truth=np.asarray(truth, np.int8))
    tmp.replace(out)
    return out


def stream_frame(path: str | Path, package: str | Path, scanner_id: str = "drill") -> pd.DataFrame:
    """A cached stream as a monitor frame (the columns `atr.monitor.windows` builds), with
    the package policy's decisions and the truth columns (`paper_only`, threats)."""
    from atr.package.onnx_scorer import OnnxScorer

    scorer = OnnxScorer(package)
    with np.load(path, allow_pickle=False) as npz:
        scores, emb, stats, truth = (npz[k] for k in ("scores", "embedding", "stats", "truth"))
    decisions, reasons = scorer.policy.decide(scores.astype(np.float64))
    frame = pd.DataFrame({
        "item_id": [f"{Path(path).stem}-{i:06d}" for i in range(len(scores))],
        "scanner_id": scanner_id,
        "decision": [str(d) for d in decisions],
        "reason": list(reasons),
    })
    for j, output in enumerate(scorer.outputs):
        frame[f"score_{output}"] = scores[:, j].astype(np.float32)
    frame["embedding"] = list(emb.astype(np.float32))
    for j, name in enumerate(STAT_NAMES):
        frame[name] = stats[:, j]
    for j, output in enumerate(scorer.outputs):
        frame[output] = truth[:, j].astype(float)
    return frame


# --- replaying the monitor over a stream ----------------------------------------------

def window_series(reference: pd.DataFrame, frame: pd.DataFrame, methods: DriftMethods,
                  size: int, step: int) -> list[dict]:
    """Drift scores of every window of `frame` (ending size, size+step, ... items in),
    each with `end`: the number of stream items seen when it closes."""
    series = []
    for end in range(size, len(frame) + 1, step):
        scores = window_scores(reference, frame.iloc[end - size : end], methods)
        series.append({**scores, "end": end})
    return series


def alarms(rule: DriftRule, series: Sequence[Mapping]) -> list[dict]:
    """Where the rule fires over a series of windows (counting afresh after each alarm)."""
    streaming, fired = StreamingRule(rule), []
    for scores in series:
        decision = streaming.update(scores)
        if decision.drift:
            fired.append({"end": scores["end"], "kind": decision.kind,
                          "score": decision.score})
    return fired


def onset_delay(rule: DriftRule, series: Sequence[Mapping], onset: int) -> dict:
    """Items after `onset` until the first alarm of a window that holds drifted items;
    alarms on windows closed at or before the onset are false alarms."""
    fired = alarms(rule, series)
    before = [a for a in fired if a["end"] <= onset]
    after = [a for a in fired if a["end"] > onset]
    return {"delay_items": after[0]["end"] - onset if after else None,
            "kind": after[0]["kind"] if after else None,
            "false_alarms_before_onset": len(before),
            "items_after_onset": int(series[-1]["end"] - onset) if series else 0}
