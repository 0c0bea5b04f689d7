"""`label-studio start`'s command line survives any random credential: a password that
begins with "-" once made argparse refuse the start ("--password: expected one argument")."""

from __future__ import annotations

import argparse
from pathlib import Path

from atr.labels.labelstudio_server import Credentials, server_command


def _parse(cmd: list[str]) -> argparse.Namespace:
    """The options as an argparse parser reads them, as label-studio's own does."""
    parser = argparse.ArgumentParser()
    parser.add_argument("command")
    for flag in ("--data-dir", "--port", "--internal-host", "--username", "--password",
                 "--user-token", "--log-level"):
        parser.add_argument(flag)
    for flag in ("--no-browser", "--enable-legacy-api-token"):
        parser.add_argument(flag, action="store_true")
    return parser.parse_args(cmd[1:])


def test_a_password_beginning_with_a_dash_reaches_label_studio() -> None:
    creds = Credentials("a@atr.local", "-Xy_9-z", "-" + "0" * 39)
    args = _parse(server_command(Path("/ls/bin/label-studio"), Path("/data"), 8089, creds))
    assert (args.username, args.password, args.user_token) == (creds.email, creds.password,
                                                                creds.token)
    assert args.port == "8089" and args.enable_legacy_api_token
