"""The approval record: the tags on a registered version that say who approved it for
which alias, when, and how. Only a version whose record names the alias it is served under
is served (serving/model_source.py); `atr approve` and the MLflow auth app
(atr/registry/auth_app.py) are the two writers.

With the auth app the record is the server's: it writes it after an authenticated
reviewer moved the alias, and refuses any client's attempt to set these tags itself, so
`approved_by` is the authenticated account, never a name someone typed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

APPROVED_BY = "approved_by"
APPROVED_AT = "approved_at"
ALIAS = "approval.alias"
MODE = "approval.mode"
PREVIOUS = "approval.previous_champion"
RECORDED_BY = "approval.recorded_by"  # "server" when the auth app wrote the record
PREFIX = "approval."

# manual: `atr approve` on a store without the auth app; ui / api: through the auth app
# (browser / MLflow client); auto-simulation: demos and simulations, never a human
MODES = ("manual", "ui", "api", "auto-simulation")


def is_record_tag(key: str) -> bool:
    """A tag of the approval record (only its writers may set or delete it)."""
    return key in (APPROVED_BY, APPROVED_AT) or key.startswith(PREFIX)


def approval_problem(tags: Mapping[str, str], alias: str) -> str | None:
    """Why `tags` are no valid approval record for `alias`; None when they are."""
    by = str(tags.get(APPROVED_BY, "")).strip()
    if not by:
        return f"no approval record (tag {APPROVED_BY} missing): approve it for @{alias}"
    recorded_alias = tags.get(ALIAS)
    if recorded_alias != alias:
        return (f"approved for @{recorded_alias} by {by}, not for @{alias}"
                if recorded_alias else f"approval record without {ALIAS}")
    at = tags.get(APPROVED_AT, "")
    try:
        datetime.fromisoformat(str(at))
    except ValueError:
        return f"approval record with an unreadable {APPROVED_AT}={at!r}"
    mode = tags.get(MODE)
    if mode not in MODES:
        return f"approval record with an unknown {MODE}={mode!r} (one of {MODES})"
    return None
