"""What a frontline batch row holds for one stored upload: the deciding model's input says.

* Upload decided by a pseudo-colour model (and any upload that cannot be a low/high pair):
  `image` = the upload's bytes, exactly as the scanner sent them; `raw` empty.
* Upload decided by a dual-energy model: `raw` = the low/high pair as uint16 2HxW, low
  energy above high (the dataset contract, values exact: the dual-energy model trains on
  `raw`), and `image` = an 8-bit grey picture of the low-energy transmission, rendered by
  the model's own `PreprocessSpec.display(attenuation(pair, air_level))` (what the drift
  statistics and a reviewer see of that scan). The meta keeps `image_ref`, the upload's
  content address, so the original bytes stay one lookup away.

Which of the two an upload is cannot be read from its bytes: a single-energy 16-bit grey
scan of even height looks exactly like a stacked pair. So only uploads that *could* be a
pair (16-bit grey, even height or two pages) are looked up, through the model version on
their prediction row -> that version's registered `preprocess.json` (checksum checked
against its `sha256.preprocess.json` tag, one small download per version and run). Any
other upload cannot have been decided by a dual-energy model (serving refuses it) and is
written as today, with no registry access. Fail-safe: when such a candidate's model cannot
be resolved (no model on the row, version missing, registry unreachable, checksum
mismatch) the item is left unbatched with the reason; its feedback waits for a run that
can tell, rather than being written in a form that may be wrong for training.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from atr.package.checksums import sha256_file
from atr.package.dual_energy import DualEnergyDecodeError, attenuation, decode_dual_energy
from atr.package.layout import PACKAGE_PATH, PREPROCESS_FILE, SHA_TAG_PREFIX
from atr.package.preprocess import PreprocessSpec
from atr.store.image_store import ImageStore, ImageStoreError

IMAGE_EXT = {"PNG": ".png", "JPEG": ".jpg", "TIFF": ".tif", "BMP": ".bmp", "WEBP": ".webp"}
_WIDE_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}  # what decode_dual_energy accepts
# Where `atr register` stages the package inside a version's model artifacts.
PREPROCESS_ARTIFACT = f"{PACKAGE_PATH}/{PREPROCESS_FILE}"
IMAGE_RENDERING = "PreprocessSpec.display: low-energy transmission as 8-bit grey"


class UploadUnusable(ValueError):
    """The upload cannot go into a batch now; the message says why (item left unbatched)."""


class ModelSpecUnavailable(ValueError):
    """The preprocess spec of a model version cannot be read from the registry."""


# (model name, model version) -> that version's PreprocessSpec; raises ModelSpecUnavailable.
SpecLookup = Callable[[str, str], PreprocessSpec]


@dataclass(frozen=True)
class Upload:
    ref: str
    ext: str  # the upload's extension (written as is when spec is None)
    spec: PreprocessSpec | None = None  # the deciding dual-energy model's spec

    def row(self, data: bytes) -> dict[str, Any]:
        """DatasetWriter.add keyword arguments for this upload's bytes."""
        if self.spec is None:
            return {"image": data, "ext": self.ext}
        pair = decode_dual_energy(data, max_pixels=self.spec.max_pixels)
        picture = self.spec.display(attenuation(pair, self.spec.air_level))
        return {"image": picture, "raw": stack_pair(pair)}

    def meta(self) -> dict[str, Any]:
        """Keys added to the row's meta; none for an upload written as is (same bytes as
        before dual-energy support)."""
        if self.spec is None:
            return {}
        return {"representation": "dual_energy", "image_rendering": IMAGE_RENDERING}


def stack_pair(pair: np.ndarray) -> np.ndarray:
    """uint16 HxWx2 (low, high) -> uint16 2HxW, low energy on top (the `raw` contract)."""
    return np.ascontiguousarray(np.concatenate([pair[..., 0], pair[..., 1]], axis=0))


def inspect_upload(images: ImageStore, ref: str, model_name: str | None,
                   model_version: str | None, specs: SpecLookup | None) -> Upload:
    """How the stored upload `ref` goes into a batch; raises UploadUnusable with the reason."""
    try:
        # header only from a folder; an object store (no path) hands over the bytes
        source = images.path(ref) if hasattr(images, "path") else io.BytesIO(images.get(ref))
        with Image.open(source) as img:
            ext = IMAGE_EXT.get(str(img.format), "")
            candidate = img.mode in _WIDE_MODES and (
                getattr(img, "n_frames", 1) >= 2 or img.size[1] % 2 == 0)
    except (FileNotFoundError, ImageStoreError):
        raise UploadUnusable(f"image {ref} not in the image store") from None
    except OSError as e:
        raise UploadUnusable(f"image {ref} unreadable ({e})") from None
    if not ext:
        raise UploadUnusable(f"image {ref}: unsupported format")
    if not candidate:
        return Upload(ref, ext)
    model = f"model {model_name} v{model_version}"
    if not model_name or not model_version:
        why = "the prediction names no model"
    elif specs is None:
        why = "no model registry to ask"
    else:
        try:
            spec = specs(model_name, model_version)
        except ModelSpecUnavailable as e:
            why = str(e)
        else:
            return _checked(Upload(ref, ext, spec if spec.dual_energy else None), images)
    raise UploadUnusable(
        f"image {ref} is 16-bit grey and could be a dual-energy pair, but the representation "
        f"of its {model} is unknown ({why}); left for a run that can resolve the model")


def _checked(upload: Upload, images: ImageStore) -> Upload:
    # Decode once here, so a pair that does not decode is skipped with its reason instead
    # of failing the whole batch at write time.
    if upload.spec is not None:
        try:
            decode_dual_energy(images.get(upload.ref), max_pixels=upload.spec.max_pixels)
        except DualEnergyDecodeError as e:
            raise UploadUnusable(f"image {upload.ref}: not a readable dual-energy pair "
                                 f"({e})") from None
    return upload


class RegistrySpecs:
    """SpecLookup from the MLflow registry: a version's registered preprocess.json, its
    sha256 checked against the version's tag; answers (and failures) cached per run."""

    def __init__(self, tracking_uri: str, registry_uri: str | None = None) -> None:
        self.tracking_uri, self.registry_uri = tracking_uri, registry_uri or tracking_uri
        self._cache: dict[tuple[str, str], PreprocessSpec | ModelSpecUnavailable] = {}
        self._client: Any = None

    def __call__(self, name: str, version: str) -> PreprocessSpec:
        key = (name, version)
        if key not in self._cache:
            try:
                self._cache[key] = self._fetch(name, version)
            except ModelSpecUnavailable as e:
                self._cache[key] = e  # one registry round trip per version, not per item
        found = self._cache[key]
        if isinstance(found, ModelSpecUnavailable):
            raise found
        return found

    def _fetch(self, name: str, version: str) -> PreprocessSpec:
        import mlflow.artifacts  # imported on first need: most batches never ask
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        where = f"model {name} v{version}"
        try:
            if self._client is None:
                self._client = MlflowClient(self.tracking_uri, self.registry_uri)
            mv = self._client.get_model_version(name, version)
            uri = self._client.get_model_version_download_uri(name, version)
            with tempfile.TemporaryDirectory(prefix="atr-spec-") as tmp:
                local = Path(mlflow.artifacts.download_artifacts(
                    artifact_uri=f"{uri.rstrip('/')}/{PREPROCESS_ARTIFACT}", dst_path=tmp,
                    tracking_uri=self.tracking_uri))
                digest, text = sha256_file(local), local.read_text()
        except (MlflowException, OSError) as e:
            raise ModelSpecUnavailable(f"{where}: {str(e).splitlines()[0]}") from None
        expected = (mv.tags or {}).get(SHA_TAG_PREFIX + PREPROCESS_FILE)
        if expected is None or digest != expected:
            raise ModelSpecUnavailable(
                f"{where}: preprocess.json does not match its sha256 tag ({expected})")
        try:
            return PreprocessSpec.from_json(text)
        except (ValueError, TypeError) as e:
            raise ModelSpecUnavailable(f"{where}: preprocess.json unusable ({e})") from None
