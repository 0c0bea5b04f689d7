"""The registered model as an MLflow pyfunc: the ONNX package plus its preprocessing and policy.

`mlflow.pyfunc.load_model("models:/atr-screening@champion")` and `mlflow models serve`
both go through this class, so a reviewer can try any version exactly as the line would
run it. Two input forms:

- a pandas DataFrame with a column `image_b64` (base64 image file bytes: PNG, JPEG, TIFF,
  16-bit gray...): decoded and preprocessed here with the package's `preprocess.json`;
- a float32 tensor N x 3 x S x S already preprocessed (a numpy array, or a dict
  `{"image": array}` as the scoring server makes of `{"inputs": {"image": [...]}}`).

Output: one row per image, a score column per model output (`paper_only`, threats...),
then `decision` and `reason` from the package's `policy.json`. Fail-safe: an image that
does not decode is INSPECTed with serving's reason `image_unreadable`
(atr.package.reasons), never CLEARed.

The class holds no state worth pickling: `load_context` rebuilds everything from the
package files logged as the artifact `package` (atr.package.layout), through the same
loader serving uses (atr.package.onnx_scorer.load_scorer); the class itself is imported
from the installed `atr` package (the environment that serves the model must have it).
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from atr.package.layout import PACKAGE_ARTIFACT
from atr.package.reasons import IMAGE_UNREADABLE

IMAGE_COLUMN = "image_b64"
TENSOR_INPUT = "image"


class ScreeningModel(mlflow.pyfunc.PythonModel):
    """ONNX screening model + preprocessing + decision policy, loaded from a model package."""

    def load_context(self, context: Any) -> None:
        self.load_package(Path(context.artifacts[PACKAGE_ARTIFACT]))

    def load_package(self, package_dir: Path) -> None:
        """Load straight from a package folder (tests and tools that skip MLflow)."""
        from atr.package.onnx_scorer import load_scorer

        # The scoring server runs several workers; one thread each keeps them from fighting.
        self.scorer = load_scorer(package_dir, intra_op_threads=1)
        self.spec = self.scorer.preprocess
        self.policy = self.scorer.policy
        self.outputs = list(self.scorer.outputs)

    # model_input is left unannotated on purpose: MLflow 3 would otherwise try to derive
    # the signature from the type hint, and no single hint covers both input forms.
    def predict(self, context, model_input, params: dict[str, Any] | None = None) -> pd.DataFrame:
        if isinstance(model_input, pd.DataFrame) and IMAGE_COLUMN in model_input.columns:
            return self._predict_encoded(model_input[IMAGE_COLUMN].tolist())
        return self._predict_tensor(_as_tensor(model_input, self.spec.input_size))

    def _predict_encoded(self, encoded: list[Any]) -> pd.DataFrame:
        images, ok = [], []
        for item in encoded:
            try:
                raw = base64.b64decode(str(item), validate=True)
                images.append(self.spec.decode(raw))
                ok.append(True)
            except (ValueError, binascii.Error):  # ImageDecodeError is a ValueError
                ok.append(False)
        frame = self._predict_tensor(self.spec.prepare_batch(images))
        return _reinsert_failed(frame, ok, self.outputs)

    def _predict_tensor(self, tensor: np.ndarray) -> pd.DataFrame:
        scores, _ = self.scorer.score_tensor(tensor)
        decisions, reasons = self.policy.decide(scores)
        frame = pd.DataFrame(np.asarray(scores, np.float64), columns=self.outputs)
        frame["decision"] = [str(d) for d in decisions]
        frame["reason"] = reasons
        return frame


def _as_tensor(model_input: Any, size: int) -> np.ndarray:
    """Accept ndarray / nested list / {"image": ...} / one-column frame of 3xSxS cells."""
    if isinstance(model_input, dict):
        if TENSOR_INPUT not in model_input:
            raise ValueError(
                f"dict input needs the key {TENSOR_INPUT!r}; got {sorted(model_input)}"
            )
        model_input = model_input[TENSOR_INPUT]
    if isinstance(model_input, pd.DataFrame):
        if TENSOR_INPUT not in model_input.columns:
            raise ValueError(
                f"DataFrame input needs a column {IMAGE_COLUMN!r} (base64 image bytes) or "
                f"{TENSOR_INPUT!r} (3x{size}x{size} preprocessed arrays); "
                f"got {list(model_input.columns)}"
            )
        model_input = np.stack([np.asarray(v, np.float32) for v in model_input[TENSOR_INPUT]])
    tensor = np.asarray(model_input, dtype=np.float32)
    if tensor.ndim == 3:
        tensor = tensor[None]
    if tensor.ndim != 4 or tensor.shape[1:] != (3, size, size):
        raise ValueError(f"tensor input must be float32 Nx3x{size}x{size}, got {tensor.shape}")
    return np.ascontiguousarray(tensor)


def _reinsert_failed(frame: pd.DataFrame, ok: list[bool], outputs: list[str]) -> pd.DataFrame:
    """Put rows for undecodable images back in input order: NaN scores, INSPECT."""
    if all(ok):
        return frame
    rows, good = [], iter(frame.to_dict("records"))
    for fine in ok:
        if fine:
            rows.append(next(good))
        else:
            failed: dict[str, Any] = dict.fromkeys(outputs, float("nan"))
            failed.update(decision="INSPECT", reason=IMAGE_UNREADABLE)
            rows.append(failed)
    return pd.DataFrame(rows, columns=[*outputs, "decision", "reason"])


def encode_image_file(path: str | Path) -> str:
    """base64 text of an image file, the `image_b64` cell the model takes."""
    return base64.b64encode(Path(path).read_bytes()).decode("ascii")


def output_schema(outputs: list[str]) -> Any:
    from mlflow.types import ColSpec, Schema

    return Schema([ColSpec("double", o) for o in outputs]
                  + [ColSpec("string", "decision"), ColSpec("string", "reason")])


def describe_inputs(size: int) -> str:
    """Human text stored with the model (metadata) since the signature states no input."""
    return json.dumps({
        "dataframe": {"columns": [IMAGE_COLUMN], "cell": "base64 image file bytes"},
        "tensor": {"name": TENSOR_INPUT, "dtype": "float32", "shape": [-1, 3, size, size],
                   "serve": '{"inputs": {"image": [[[[...]]]]}} or {"inputs": [[[[...]]]]}'},
    })
