"""The model package's contract in names: its files, where MLflow keeps it, its version tags.

One definition for every producer (train, evaluate, `atr register`) and every consumer
(serving, the pyfunc, the gate, `atr approve`, the monitor): a name changed here changes
everywhere at once, so a registered package can never be looked for under the wrong path.
"""

from __future__ import annotations

# --- files inside a package folder --------------------------------------------------------
MODEL_FILE = "model.onnx"
PREPROCESS_FILE = "preprocess.json"
TAXONOMY_FILE = "taxonomy.json"
POLICY_FILE = "policy.json"  # written by the evaluate stage; without it nothing can decide
REFERENCE_FILE = "reference.parquet"  # the drift monitor's baseline (evaluate stage)
# Thresholds of the checks that an image shows evidence at all (atr.package.plausibility;
# evaluate stage). Optional: a package without it is judged on the generic defaults.
PLAUSIBILITY_FILE = "plausibility.json"
# The optional `heatmap` output's classes and grid (atr.package.localisation; train stage).
# A package without it gives no localisation.
LOCALISATION_FILE = "localisation.json"
MANIFEST_FILE = "package.json"  # sha256 of every other file (atr.package.manifest)
RUN_FILE = "run.json"  # the training run's record (run id, tracking URI...)
# What a package needs before it can be registered or scored at all.
REQUIRED_FILES = (MODEL_FILE, PREPROCESS_FILE, TAXONOMY_FILE)

# --- MLflow -------------------------------------------------------------------------------
# The name of the package in the pyfunc's `artifacts` map, and the folder name it is
# staged under: MLflow stores a directory artifact by its basename, so the two must agree.
PACKAGE_ARTIFACT = "package"
# Where that folder sits inside a logged model (what a download asks for, without the
# pyfunc's pickle).
PACKAGE_PATH = f"artifacts/{PACKAGE_ARTIFACT}"

# --- model version tags -------------------------------------------------------------------
SHA_TAG_PREFIX = "sha256."  # `sha256.<posix relative path>` = hex digest, one per file
PACKAGE_NAME_TAG = "atr.package_name"


class PackageError(ValueError):
    """A model package is missing a file or holds one that does not fit the contract.

    A ValueError so that the CLI reports it as a domain error, without a traceback.
    """
