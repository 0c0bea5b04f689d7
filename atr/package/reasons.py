"""Fail-safe reason codes: why an item was INSPECTed without the policy deciding it.

Serving, its API and metrics, and the MLflow pyfunc all send an item they could not
score to INSPECT with one of these codes, never CLEAR, so a reviewer reads the same code
for the same failure wherever the model ran.

The decision rule's own reasons (`paper_only`, `uncertain`, `threat:<class>`,
`invalid_scores`) stay in atr.policy.decision: the policy emits them and may not import
atr.package. `invalid_scores` (non-finite scores) is fail-safe too, hence in
FAILSAFE_REASONS, but it is defined there only.
"""

from __future__ import annotations

from atr.policy.decision import REASON_INVALID

IMAGE_UNREADABLE = "image_unreadable"  # not an image, truncated, wrong representation
IMAGE_TOO_LARGE = "image_too_large"  # over the size/pixel limits: never decoded
MODEL_ERROR = "model_error"  # the network raised on the batch
TIMEOUT = "timeout"  # no decision within the deadline
NO_MODEL = "no_model"  # no verified model loaded yet
# The prediction store failed: the reply says INSPECT with HTTP 503 (not acknowledged);
# the one code that is never stored.
STORE_ERROR = "store_error"

FAILSAFE_REASONS = frozenset({IMAGE_UNREADABLE, IMAGE_TOO_LARGE, MODEL_ERROR, TIMEOUT,
                              NO_MODEL, STORE_ERROR, REASON_INVALID})
