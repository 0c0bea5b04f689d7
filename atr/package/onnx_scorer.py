"""Run a model package's ONNX network on RGB images: scores, embeddings, image stats.

Serving imports this module, so it must not import torch (or anything from
training): onnxruntime, numpy and the package's own JSON files only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from atr.package.image_stats import image_stats
from atr.package.layout import (
    LOCALISATION_FILE,
    MODEL_FILE,
    PLAUSIBILITY_FILE,
    POLICY_FILE,
    PREPROCESS_FILE,
    TAXONOMY_FILE,
    PackageError,
)
from atr.package.localisation import HEATMAP_OUTPUT, LocalisationSpec
from atr.package.package_files import (
    load_localisation,
    load_plausibility,
    load_policy,
    load_preprocess,
    load_taxonomy,
)
from atr.package.plausibility import PlausibilitySpec

__all__ = ["OnnxScorer", "PackageError", "image_stats", "load_scorer"]

INPUT_NAME = "image"
SCORES_NAME = "scores"
EMBEDDING_NAME = "embedding"


def load_scorer(package_dir: str | Path, intra_op_threads: int | None = None,
                require_policy: bool = True, spinning: bool = True) -> OnnxScorer:
    """The one loader of a package for scoring (serving, the pyfunc, evaluation, the gate).

    require_policy: refuse a package without policy.json; only the evaluate stage, which
    is about to write one, loads a package without it. spinning: see OnnxScorer.
    """
    scorer = OnnxScorer(package_dir, intra_op_threads=intra_op_threads, spinning=spinning)
    if require_policy and scorer.policy is None:
        raise PackageError(f"model package {scorer.package_dir} has no {POLICY_FILE}: run "
                           "the evaluate stage (atr evaluate) first; nothing can decide without it")
    return scorer


class OnnxScorer:
    """The network of one model package, ready to score batches of RGB images.

    spinning: ONNX Runtime's worker threads busy-wait for work between and after parallel
    sections (its default). Off, they sleep: on a box whose cores other threads need (the
    service's event loop and decode thread), spinning doubled the CPU per item at 2 threads
    (serving/README.md). Scores are the same either way."""

    def __init__(
        self,
        package_dir: str | Path,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        intra_op_threads: int | None = None,
        spinning: bool = True,
    ) -> None:
        self.package_dir = Path(package_dir)
        if not self.package_dir.is_dir():
            raise PackageError(f"model package {self.package_dir} is not a directory")
        self.taxonomy = load_taxonomy(self.package_dir / TAXONOMY_FILE)
        self.outputs: list[str] = self.taxonomy.model_outputs
        self.preprocess = load_preprocess(self.package_dir / PREPROCESS_FILE)
        self._session = _open_session(self.package_dir / MODEL_FILE, providers, intra_op_threads,
                                      spinning)
        self.embedding_dim = _check_signature(
            self._session, self.package_dir / MODEL_FILE, len(self.outputs),
            self.preprocess.input_size,
        )
        self.policy = load_policy(self.package_dir / POLICY_FILE)
        if self.policy is not None and list(self.policy.outputs) != self.outputs:
            # e.g. a no_threat model with a paper_only policy: the thresholds would be
            # applied to the wrong scores.
            raise PackageError(
                f"{self.package_dir / POLICY_FILE}: policy outputs {self.policy.outputs} "
                f"differ from taxonomy.json's model outputs {self.outputs}"
            )
        # What an image must show before its score may CLEAR it (atr.package.plausibility).
        self.plausibility: PlausibilitySpec = load_plausibility(
            self.package_dir / PLAUSIBILITY_FILE, self.embedding_dim)
        # Where the evidence is (atr.package.localisation); None: the package has no heat-map.
        self.localisation: LocalisationSpec | None = load_localisation(
            self.package_dir / LOCALISATION_FILE, self._session, self.taxonomy.threats)

    def score_images(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """One forward pass over decoded scans (`preprocess.decode`: uint8 HxWx3 RGB, or
        HxWx2 attenuation for a dual-energy model): (scores NxK, embeddings NxD).

        Scores are in `self.outputs` order (`taxonomy.model_outputs`).
        """
        if len(images) == 0:
            return (
                np.zeros((0, len(self.outputs)), np.float32),
                np.zeros((0, self.embedding_dim or 0), np.float32),
            )
        return self.score_tensor(self.preprocess.prepare_batch(list(images)))

    def score_images_localised(self, images: Sequence[np.ndarray]
                               ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """score_images plus the heat-maps (N x C x h x w, `self.localisation`'s classes)
        from the same pass; None for a package without localisation."""
        if self.localisation is None or len(images) == 0:
            return (*self.score_images(images), None)
        batch = self.preprocess.prepare_batch(list(images))
        return self._run(np.ascontiguousarray(batch, np.float32), heatmap=True)

    def score_tensor(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One forward pass over an already preprocessed float32 Nx3xSxS batch (the
        pyfunc's tensor input form): (scores NxK, embeddings NxD)."""
        batch = np.ascontiguousarray(batch, np.float32)
        if len(batch) == 0:
            return self.score_images([])
        scores, emb, _ = self._run(batch, heatmap=False)
        return scores, emb

    def _run(self, batch: np.ndarray, heatmap: bool
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        names = [SCORES_NAME, EMBEDDING_NAME] + ([HEATMAP_OUTPUT] if heatmap else [])
        scores, emb, *rest = self._session.run(names, {INPUT_NAME: batch})
        n = len(batch)
        if scores.shape != (n, len(self.outputs)) or emb.ndim != 2 or emb.shape[0] != n:
            raise PackageError(
                f"{self.package_dir / MODEL_FILE}: for a batch of {n} the model returned scores "
                f"{scores.shape} and embedding {emb.shape}; expected ({n}, {len(self.outputs)}) "
                f"scores for outputs {self.outputs} and ({n}, D) embeddings"
            )
        heat = None
        if rest:
            heat = rest[0]
            c = len(self.localisation.classes)  # type: ignore[union-attr]
            if heat.ndim != 4 or heat.shape[:2] != (n, c):
                raise PackageError(f"{self.package_dir / MODEL_FILE}: heatmap {heat.shape} for "
                                   f"a batch of {n}, expected ({n}, {c}, h, w)")
        return scores.astype(np.float32, copy=False), emb.astype(np.float32, copy=False), heat

    def score_paths(
        self, paths: Sequence[str | Path], batch_size: int = 32
    ) -> tuple[np.ndarray, np.ndarray]:
        """Decode and score image files in batches of `batch_size`."""
        scores, emb, _ = self.score_paths_with_stats(paths, batch_size, with_stats=False)
        return scores, emb

    def score_paths_with_stats(
        self, paths: Sequence[str | Path], batch_size: int = 32, with_stats: bool = True
    ) -> tuple[np.ndarray, np.ndarray, list[dict[str, float]]]:
        """Like score_paths, plus `image_stats` of each image (decoded only once).

        The files are what the representation reads: the manifest's `image` column for a
        pseudo-colour model, its `raw` column for a dual-energy one
        (`preprocess.input_column`)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        all_scores, all_emb, stats = [], [], []
        for start in range(0, len(paths), batch_size):
            images = [self.preprocess.decode(p) for p in paths[start : start + batch_size]]
            s, e = self.score_images(images)
            all_scores.append(s)
            all_emb.append(e)
            if with_stats:
                stats += [image_stats(self.preprocess.display(im)) for im in images]
        if not all_scores:
            s, e = self.score_images([])
            return s, e, []
        return np.concatenate(all_scores), np.concatenate(all_emb), stats


def _open_session(path: Path, providers: Sequence[str], intra_op_threads: int | None,
                  spinning: bool = True) -> Any:
    import onnxruntime as ort

    if not path.is_file():
        raise PackageError(f"model package file {path} is missing")
    opts = ort.SessionOptions()
    if intra_op_threads is not None:
        opts.intra_op_num_threads = int(intra_op_threads)
    if not spinning:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=list(providers))
    except Exception as exc:  # onnxruntime raises its own exception types for bad models
        raise PackageError(f"model package file {path} is not a loadable ONNX model: {exc}") \
            from exc


def _check_signature(session: Any, path: Path, n_outputs: int, input_size: int) -> int | None:
    """Refuse a network whose input/output names or static shapes break the contract.

    Returns the embedding width when the graph states it statically.
    """
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name: o for o in session.get_outputs()}
    if set(inputs) != {INPUT_NAME}:
        raise PackageError(f"{path}: inputs {sorted(inputs)}; the contract is one input 'image'")
    missing = {SCORES_NAME, EMBEDDING_NAME} - set(outputs)
    if missing:
        raise PackageError(
            f"{path}: outputs {sorted(outputs)} lack {sorted(missing)} "
            "(the contract: 'scores' NxK and 'embedding' NxD)"
        )
    image_shape = inputs[INPUT_NAME].shape
    channels = image_shape[1] if len(image_shape) == 4 else None
    if len(image_shape) != 4 or (isinstance(channels, int) and channels != 3):
        raise PackageError(f"{path}: input 'image' has shape {image_shape}, expected Nx3xSxS")
    fixed = [d for d in image_shape[2:] if isinstance(d, int)]
    if any(d != input_size for d in fixed):
        raise PackageError(
            f"{path}: input 'image' has shape {image_shape} but preprocess.json prepares "
            f"{input_size}x{input_size} images"
        )
    scores_shape = outputs[SCORES_NAME].shape
    k = scores_shape[1] if len(scores_shape) == 2 else None
    if len(scores_shape) != 2 or (isinstance(k, int) and k != n_outputs):
        raise PackageError(
            f"{path}: output 'scores' has shape {scores_shape}; taxonomy.json names "
            f"{n_outputs} model outputs"
        )
    emb_shape = outputs[EMBEDDING_NAME].shape
    if len(emb_shape) != 2:
        raise PackageError(f"{path}: output 'embedding' has shape {emb_shape}, expected NxD")
    return emb_shape[1] if isinstance(emb_shape[1], int) else None
