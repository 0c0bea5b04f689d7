"""`models:/NAME@ALIAS` and `models:/NAME/VERSION`: the registry references jobs accept.

Pure `re`, so that parsing a config value never imports MLflow.
"""

from __future__ import annotations

import re

_MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[\w.-]+)|/(?P<version>\d+))$")
FORMS = "models:/NAME@ALIAS or models:/NAME/VERSION"


def parse_model_uri(uri: str) -> tuple[str, str] | None:
    """(model name, alias or version number), or None when `uri` is neither form."""
    match = _MODEL_URI.match(uri.strip())
    return (match["name"], match["alias"] or match["version"]) if match else None
