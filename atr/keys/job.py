"""`atr keys issue|revoke|list`: the operator's side of the key registry.

    atr keys issue --role scanner --scanner parcel_160kv [--scanner B] --name belt-3
    atr keys issue --role inspection --name office-7
    atr keys revoke belt-3
    atr keys list

`issue` prints the new key once (only its SHA-256 is kept) and appends its record to
keys.file (paths.keys_file: every replica's serve.keys_file) atomically; replicas
sharing the file accept it, and refuse a revoked one, within about a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from serving.keys import ROLES, add_key, read_keys, revoke_key

FLAGS = {"--role": "role", "--scanner": "scanners", "--name": "name"}


def flags(args: list[str]) -> list[str]:
    """`issue --role R --scanner A --scanner B --name N` / `revoke N` -> overrides."""
    out: list[str] = []
    scanners: list[str] = []
    it = iter(args)
    for tok in it:
        flag, _, inline = tok.partition("=")
        if flag in FLAGS and tok.startswith("--"):
            value = inline if inline else next(it, "")
            if FLAGS[flag] == "scanners":
                scanners.append(value)
            else:
                out.append(f"keys.{FLAGS[flag]}={value}")
        elif tok in ("issue", "revoke", "list"):
            out.append(f"keys.action={tok}")
        elif "=" not in tok and not tok.startswith("-"):
            out.append(f"keys.name={tok}")  # atr keys revoke NAME
        else:
            out.append(tok)
    if scanners:
        out.append("keys.scanners=[" + ",".join(f"'{s}'" for s in scanners) + "]")
    return out


def run(cfg: DictConfig) -> dict[str, Any]:
    k = cfg["keys"]  # not cfg.keys: that is DictConfig.keys()
    path = Path(str(k.file))
    action = str(k.action)
    if action == "list":
        doc = read_keys(path)
        return {"keys_file": str(path), "keys": [r.public() for r in doc.keys]}
    if not k.name:
        raise ValueError(f"keys.name: which key (atr keys {action} ... --name NAME)")
    if action == "revoke":
        gone = revoke_key(path, str(k.name))
        return {"keys_file": str(path), "revoked": gone.public()}
    if action != "issue":
        raise ValueError(f"keys.action: issue, revoke or list, not {action!r}")
    if str(k.role) not in ROLES:
        raise ValueError(f"keys.role: one of {', '.join(ROLES)} (--role), not {k.role!r}")
    scanners = tuple(str(s) for s in k.scanners or ())
    token, record = add_key(path, str(k.name), str(k.role), scanners)
    return {"keys_file": str(path), "issued": record.public(), "key": token,
            "note": "shown once: give it to the caller now (header X-API-Key); only its "
                    "SHA-256 is stored"}
