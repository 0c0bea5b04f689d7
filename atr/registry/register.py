"""`atr register`: the pipeline's last stage. Logs the package as a pyfunc in its training
run, registers a new version of the screening model and points `@challenger` at it.

Version tags written: `sha256.<file>` for every package file, `eval.<metric>` for the
evaluation metrics, the lineage tags (`data.*`, `git.*`), `atr.package_name`.
The alias `champion` is never touched here: only a reviewer moves it (`atr approve` or
the MLflow UI).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities.model_registry import ModelVersion

from atr.package.checksums import checksum_tags
from atr.package.layout import (
    MANIFEST_FILE,
    PACKAGE_ARTIFACT,
    PACKAGE_NAME_TAG,
    POLICY_FILE,
    PREPROCESS_FILE,
    RUN_FILE,
)
from atr.package.verify import check_local_package
from atr.registry import lineage
from atr.registry.tracking import cfg_value, configure, ensure_experiment, model_name

CHALLENGER = "challenger"
LINEAGE_PREFIXES = ("data.", "git.")
_METRIC_KEY = re.compile(r"[^A-Za-z0-9_\-. /:]")


def register_package(package_dir: str | Path, cfg: Any) -> ModelVersion:
    """Log, register and alias one model package; returns the new ModelVersion."""
    package = Path(package_dir).resolve()
    checksums = check_local_package(package)
    client = configure(cfg)
    name = model_name(cfg)
    eval_dir = Path(str(cfg_value(cfg, "register.eval_dir", package / "artifacts" / "eval")))
    metrics = flatten_metrics(_read_json(eval_dir / "metrics.json"))
    policy = _read_json(package / POLICY_FILE)
    if not policy:
        # The pyfunc decides with policy.json; without it the model cannot run on the line.
        raise FileNotFoundError(f"{package}/{POLICY_FILE} is missing: run `atr evaluate` first")
    size = int(_read_json(package / PREPROCESS_FILE).get("input_size", 224))

    run_id = _training_run(package, cfg)
    with mlflow.start_run(run_id=run_id) as run, tempfile.TemporaryDirectory() as tmp:
        # MLflow stores a directory artifact under its own basename: stage the package as
        # PACKAGE_ARTIFACT so every version has the same layout (layout.PACKAGE_PATH).
        staged = Path(tmp) / PACKAGE_ARTIFACT
        shutil.copytree(package, staged)
        with warnings.catch_warnings():
            # MLflow nags for predict() type hints and an input example; neither fits a
            # model taking two input forms (documented in pyfunc_model instead).
            warnings.filterwarnings("ignore", message=".*(type hints|input example).*")
            info = _log_pyfunc(staged, policy["outputs"], size)
        if metrics:
            mlflow.log_metrics(metrics)
        for plot in sorted(eval_dir.glob("*.png")) if eval_dir.is_dir() else []:
            mlflow.log_artifact(str(plot), artifact_path="eval")
        run_tags = mlflow.get_run(run.info.run_id).data.tags

    version = mlflow.register_model(info.model_uri, name)
    tags = {
        **checksum_tags(checksums),
        **{f"eval.{k}": _fmt(v) for k, v in metrics.items()},
        **_lineage(cfg, run_tags),
        PACKAGE_NAME_TAG: str(_read_json(package / MANIFEST_FILE).get("name", package.name)),
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version.version, key, value)
    client.set_registered_model_alias(name, CHALLENGER, version.version)
    return client.get_model_version(name, version.version)


def _log_pyfunc(staged: Path, outputs: list[str], size: int) -> Any:
    from mlflow.models import ModelSignature

    from atr.registry.pyfunc_model import (
        ScreeningModel,
        describe_inputs,
        output_schema,
    )

    return mlflow.pyfunc.log_model(
        name="model",
        python_model=ScreeningModel(),  # stateless: pickled by reference to the atr class
        artifacts={PACKAGE_ARTIFACT: str(staged)},
        # No input schema: one schema cannot hold both the image_b64 column and the
        # Nx3xSxS tensor; the model validates its input itself (see pyfunc_model).
        signature=ModelSignature(inputs=None, outputs=output_schema(outputs)),
        pip_requirements=_requirements(),
        metadata={"atr_inputs": describe_inputs(size)},
    )


def run(cfg: Any) -> dict[str, Any]:
    """Job for `atr register`: register `register.package_dir`, write registered.json."""
    version = register_package(str(cfg_value(cfg, "register.package_dir")), cfg)
    result = {
        "name": version.name,
        "version": int(version.version),
        "run_id": version.run_id,
        "uri": f"models:/{version.name}/{version.version}",
        "alias": CHALLENGER,
        "source": version.source,
    }
    out = Path(str(cfg_value(cfg, "register.output", "artifacts/registered.json")))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


def flatten_metrics(doc: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Nested metrics JSON to flat `a.b.c` -> float; non-numbers and non-finite values are
    dropped (MLflow metrics are numbers; NaN would poison comparisons in the UI)."""
    flat: dict[str, float] = {}
    for key, value in doc.items():
        name = _METRIC_KEY.sub("_", f"{prefix}{key}")
        if isinstance(value, Mapping):
            flat.update(flatten_metrics(value, f"{name}."))
        elif isinstance(value, int | float) and math.isfinite(value):
            flat[name] = float(value)
    return flat


def _training_run(package: Path, cfg: Any) -> str:
    """The run id from run.json; a package trained without MLflow gets a fresh run."""
    info = _read_json(package / RUN_FILE)
    run_id = info.get("run_id")
    if run_id:
        try:
            mlflow.get_run(run_id)
            return str(run_id)
        except mlflow.exceptions.MlflowException as exc:
            raise ValueError(
                f"{package}/run.json names run {run_id} (tracking {info.get('tracking_uri')}), "
                f"not found in {mlflow.get_tracking_uri()}: set paths.tracking_uri to the "
                "store the training job used"
            ) from exc
    experiment_id = ensure_experiment(cfg)
    with mlflow.start_run(experiment_id=experiment_id, run_name="register") as run:
        mlflow.set_tag("atr.note", "package had no run.json: registration run")
        return run.info.run_id


def _lineage(cfg: Any, run_tags: Mapping[str, str]) -> dict[str, str]:
    # Tags the training run recorded describe the data it actually read: prefer them.
    recorded = {k: v for k, v in run_tags.items() if k.startswith(LINEAGE_PREFIXES)}
    if "data.dvc_md5" in recorded:
        return recorded
    dataset = cfg_value(cfg, "register.dataset_dir", cfg_value(cfg, "paths.data_dir", "data"))
    return {**lineage.lineage_tags(str(dataset)), **recorded}


def _requirements() -> list[str]:
    """Pinned from this environment: skips MLflow's slow requirement inference, which loads
    the model in a subprocess. `atr` itself must be installed where the model is served."""
    reqs = []
    for dist in ("mlflow", "onnxruntime", "numpy", "pandas", "pillow"):
        try:
            reqs.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            reqs.append(dist)
    return reqs


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def _fmt(value: float) -> str:
    return f"{value:.6g}"
