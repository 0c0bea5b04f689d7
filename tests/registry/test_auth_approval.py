"""Approval through the MLflow server with authentication (`atr mlflow`, auth on by
default): only a reviewer account moves @champion, the server records who did, nobody
writes the record by hand, and `atr approve` records the account it logged in as.

One real `atr mlflow` (subprocess, MLflow basic-auth + atr-auth app) on a tmp runtime
holding two registered versions (v1 approved @champion); accounts made as an operator
makes them (atr.registry.accounts). Module-scoped: the server starts once (~10 s).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from helpers.mlflow_server import ACCOUNTS, MlflowServer, logged_in
from helpers.packages import build_package
from helpers.registry import NAME, Registry, registry_at
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from atr.config import compose
from atr.package import approval
from atr.registry.approve import approve


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> MlflowServer:
    root = tmp_path_factory.mktemp("auth")
    registry = registry_at(root / "runtime")
    package = build_package(root / "package", seed=0)
    for _ in range(2):
        registry.register(package)
    registry.set_alias("champion", "1")
    srv = MlflowServer(registry).start()
    try:
        srv.add_accounts()
        yield srv
    finally:
        srv.stop()


def _client(server: MlflowServer) -> MlflowClient:
    return MlflowClient(tracking_uri=server.url, registry_uri=server.url)


def _champion(registry: Registry) -> str:
    return str(registry.client().get_model_version_by_alias(NAME, "champion").version)


def _approve_cfg(server: MlflowServer, *extra: str):
    return compose("approve", [*server.registry.overrides, f"paths.tracking_uri={server.url}",
                               f"paths.registry_uri={server.url}", *extra])


def test_anonymous_calls_are_refused(server: MlflowServer) -> None:
    r = httpx.post(f"{server.url}/api/2.0/mlflow/registered-models/alias", trust_env=False,
                   json={"name": NAME, "alias": "champion", "version": "2"})
    assert r.status_code == 401
    assert _champion(server.registry) == "1"


def test_a_service_account_may_move_challenger_but_not_champion(server: MlflowServer) -> None:
    with logged_in("service"):
        client = _client(server)
        client.set_registered_model_alias(NAME, "challenger", "2")  # EDIT: the jobs' right
        with pytest.raises(MlflowException, match="reviewer role"):
            client.set_registered_model_alias(NAME, "champion", "2")
        with pytest.raises(MlflowException, match="403"):  # MLflow's own rule: MANAGE
            client.delete_registered_model_alias(NAME, "champion")
    assert _champion(server.registry) == "1"
    tags = server.registry.client().get_model_version(NAME, "2").tags
    assert approval.APPROVED_BY not in tags


@pytest.mark.parametrize("role", ["service", "reviewer"])
def test_no_client_writes_the_approval_record_itself(server: MlflowServer, role: str) -> None:
    with logged_in(role):
        client = _client(server)
        for key in (approval.APPROVED_BY, approval.ALIAS, approval.MODE):
            with pytest.raises(MlflowException, match="approval record"):
                client.set_model_version_tag(NAME, "2", key, "forged")
        # (MLflow itself refuses the service account: deleting a tag needs MANAGE)
        with pytest.raises(MlflowException, match="approval record|Permission denied"):
            client.delete_model_version_tag(NAME, "1", approval.APPROVED_BY)
    assert approval.APPROVED_BY not in server.registry.client().get_model_version(
        NAME, "2").tags


def test_atr_approve_records_the_authenticated_reviewer(server: MlflowServer) -> None:
    reviewer = ACCOUNTS["reviewer"][0]
    with logged_in("reviewer"):
        with pytest.raises(ValueError, match="not the authenticated account"):
            approve(_approve_cfg(server), version=2, by="someone-else")
        assert _champion(server.registry) == "1"  # refused before anything moved
        approved = approve(_approve_cfg(server), version=2)
    tags = approved.tags
    assert approval.approval_problem(tags, "champion") is None
    assert tags[approval.APPROVED_BY] == reviewer
    assert (tags[approval.MODE], tags[approval.RECORDED_BY]) == ("api", "server")
    assert tags[approval.PREVIOUS] == "1"
    assert _champion(server.registry) == "2"
    # the rollback is an approval too, by the same route
    with logged_in("reviewer"):
        back = approve(_approve_cfg(server), version=1)
    assert back.tags[approval.PREVIOUS] == "2" and _champion(server.registry) == "1"


def test_a_service_account_cannot_approve(server: MlflowServer) -> None:
    with logged_in("service"), pytest.raises(MlflowException, match="reviewer role"):
        approve(_approve_cfg(server), version=2)
    assert _champion(server.registry) == "1"


def test_the_reader_role_reads_but_moves_nothing(server: MlflowServer) -> None:
    with logged_in("reader"):
        client = _client(server)
        assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"
        with pytest.raises(MlflowException):
            client.set_registered_model_alias(NAME, "challenger", "1")


def test_the_auth_files_stay_in_the_runtime_with_private_secrets(server: MlflowServer) -> None:
    folder = Path(compose("mlflow", server.overrides).mlflow.auth.dir)
    secrets = folder / "secrets.json"
    assert secrets.is_file() and secrets.stat().st_mode & 0o077 == 0
    ini = (folder / "basic_auth.ini").read_text()
    assert "default_permission = READ" in ini and "admin_password" not in ini
    assert secrets.read_text() not in server.output()  # never logged


def test_atr_mlflow_user_adds_an_account_with_its_role(server: MlflowServer, monkeypatch,
                                                       capsys) -> None:
    from atr.cli import main

    monkeypatch.setenv("ATR_MLFLOW_USER_PASSWORD", "new-reviewer-pw-1")
    assert main(["mlflow-user", "nora", "--role", "reviewer", *server.overrides]) == 0
    assert '"permission": "MANAGE"' in capsys.readouterr().out
    assert main(["mlflow-user", "nora", "--role=boss", *server.overrides]) == 1
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "nora")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "new-reviewer-pw-1")
    approved = approve(_approve_cfg(server), version=2)
    assert approved.tags[approval.APPROVED_BY] == "nora"
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    with logged_in("reviewer"):
        approve(_approve_cfg(server), version=1)  # put it back for the module
