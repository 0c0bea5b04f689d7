"""`mlflow server --app-name atr-auth`: MLflow's basic-auth app plus ATR's approval rules.

MLflow's basic-auth grants permissions per registered model (READ < USE < EDIT < MANAGE),
not per alias: setting any alias needs EDIT, which the jobs need too (register sets
@challenger, the gate writes its tags). Its alias API also records nobody. So on top of
basic-auth (entry point `atr-auth` in pyproject.toml, resolved by `mlflow server
--app-name` like MLflow's own `basic-auth`):

- moving an approval alias (`ATR_APPROVAL_ALIASES`, default `champion`) needs MANAGE on the
  registered model (the reviewer role) or an admin account: 403 otherwise, the alias stays;
- after a successful move, the server writes the approval record (atr/package/approval.py)
  on the version: `approved_by` = the authenticated account, `approved_at`,
  `approval.alias`, `approval.previous_champion`, `approval.mode` (`ui` from a browser,
  `api` from the MLflow client), `approval.recorded_by=server`;
- no client may set or delete those tags (403, admins included), nor create a version
  carrying them: the record can only come from an authenticated move.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, g, jsonify, request

from atr.package import approval

log = logging.getLogger("atr.auth_app")

ALIASES_ENV = "ATR_APPROVAL_ALIASES"
CLIENT_AGENT = "mlflow-python-client/"


def approval_aliases() -> frozenset[str]:
    raw = os.environ.get(ALIASES_ENV, "champion")
    return frozenset(a.strip() for a in raw.split(",") if a.strip())


def _paths(base: str) -> tuple[str, ...]:
    from mlflow.server.handlers import _get_paths

    return tuple(_get_paths(base))


def _body() -> dict[str, Any]:
    if request.method == "GET":
        return dict(request.args)
    return request.get_json(silent=True, force=True) or {}


def _refuse(message: str) -> Response:
    resp = jsonify({"error_code": "PERMISSION_DENIED", "message": message})
    resp.status_code = 403
    return resp


def _guard() -> Response | None:
    """Runs after basic-auth's own check (the user is authenticated and allowed EDIT)."""
    user = getattr(g, "mlflow_authenticated_user", None)
    if user is None:  # an unprotected route (/health, static files)
        return None
    path, method = request.path, request.method
    if method == "GET":  # reading an alias or a tag needs no more than MLflow's READ
        return None
    if path in _paths("/mlflow/registered-models/alias"):
        body = _body()
        alias = str(body.get("alias", ""))
        if alias in approval_aliases():
            return _guard_approval(user, str(body.get("name", "")), alias, method)
    elif path in _paths("/mlflow/model-versions/set-tag") + _paths(
            "/mlflow/model-versions/delete-tag"):
        key = str(_body().get("key", ""))
        if approval.is_record_tag(key):
            return _refuse(f"tag {key!r} is part of the approval record, written by the "
                           "server when a reviewer moves the alias; no client may set it")
    elif path in _paths("/mlflow/model-versions/create"):
        keys = [str(t.get("key", "")) for t in _body().get("tags", []) or []]
        if any(approval.is_record_tag(k) for k in keys):
            return _refuse("a new version cannot carry approval-record tags")
    return None


def _guard_approval(user: str, name: str, alias: str, method: str) -> Response | None:
    from mlflow.server import auth

    if not auth.sender_is_admin() and not auth._get_registered_model_permission(
            name).can_manage:
        log.warning("refused: %s tried to %s @%s of %s without the reviewer role", user,
                    "move" if method == "POST" else "remove", alias, name)
        return _refuse(f"moving @{alias} of {name} needs the reviewer role (MANAGE on the "
                       f"registered model); {user} lacks it")
    if method == "POST":
        g.atr_previous = _current_version(name, alias)
    return None


def _current_version(name: str, alias: str) -> str:
    from mlflow.exceptions import MlflowException
    from mlflow.server.handlers import _get_model_registry_store

    try:
        return str(_get_model_registry_store().get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return "none"


def _record(resp: Response) -> Response:
    """After a successful move of an approval alias: the approval record on the version."""
    if (resp.status_code != 200 or request.method != "POST"
            or request.path not in _paths("/mlflow/registered-models/alias")):
        return resp
    body = _body()
    alias = str(body.get("alias", ""))
    if alias not in approval_aliases():
        return resp
    from mlflow.entities.model_registry import ModelVersionTag
    from mlflow.server.handlers import _get_model_registry_store

    name, version = str(body["name"]), str(body["version"])
    agent = request.headers.get("User-Agent", "")
    tags = {
        approval.APPROVED_BY: str(g.mlflow_authenticated_user),
        approval.APPROVED_AT: datetime.now(UTC).isoformat(timespec="seconds"),
        approval.ALIAS: alias,
        approval.PREVIOUS: str(getattr(g, "atr_previous", "none")),
        approval.MODE: "api" if agent.startswith(CLIENT_AGENT) else "ui",
        approval.RECORDED_BY: "server",
    }
    store = _get_model_registry_store()
    for key, value in tags.items():
        store.set_model_version_tag(name, version, ModelVersionTag(key, value))
    log.warning("approval: %s moved @%s of %s to v%s (was v%s, %s)", tags[approval.APPROVED_BY],
                alias, name, version, tags[approval.PREVIOUS], tags[approval.MODE])
    return resp


def create_app(app: Flask | None = None) -> Any:
    """The app factory `mlflow server --app-name atr-auth` runs in each worker."""
    from mlflow.server import app as mlflow_app
    from mlflow.server.auth import create_app as basic_auth

    flask_app = app or mlflow_app
    served = basic_auth(flask_app)  # registers basic-auth's before/after request first ...
    flask_app.before_request(_guard)  # ... so this runs only for authenticated, allowed calls
    flask_app.after_request(_record)
    return served
