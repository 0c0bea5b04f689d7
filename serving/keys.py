"""The API key registry: one file of key hashes, each bound to a role (and a scanner key
to its scanners), re-read when it changes so that rotation needs no restart.

    # serve.keys_file (default <paths.root>/keys.yaml), written by `atr keys`
    version: 1
    keys:
    - {name: belt-3, role: scanner, scanners: [parcel_160kv], sha256: 9f..., created_at: ...}

The file holds the SHA-256 of each key, never the key. A key is 32 random bytes
(`secrets.token_urlsafe`, 256 bits), so a plain unsalted SHA-256 is the standard store:
salts and slow hashes defend low-entropy passwords against dictionaries, and there is no
dictionary of 256-bit random tokens; a slow hash would only cost CPU on every scan. A
lookup hashes the presented key and finds the digest in a dict: no byte of a stored key
is ever compared with the input, so the timing reveals nothing about a valid key
(constant-time comparison is implicit).

`KeyRegistry.lookup` stats the file at most once a second and reloads it when its
inode, size or mtime changed: every replica sharing the file sees a new or revoked key
within about a second. Writers replace the file atomically (temp file + rename, under
a lock file), so a reader sees the old file or the new one, never half of either.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Role = Literal["scanner", "inspection", "analyst", "operator"]
ROLES: tuple[str, ...] = ("scanner", "inspection", "analyst", "operator")
log = logging.getLogger("serving.keys")
TOKEN_PREFIX = "atr_"  # tells a leaked ATR key apart in logs and secret scanners
STAT_EVERY_S = 1.0
HEADER = ("# ATR API keys: written by `atr keys issue|revoke` (docs/security.md).\n"
          "# Only the SHA-256 of each key is stored; the key itself was shown once.\n")


class KeyRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    role: Role
    scanners: tuple[str, ...] = ()  # a scanner key's scanner_ids; empty for other roles
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    created_at: str

    @model_validator(mode="after")
    def _scanners_match_role(self) -> KeyRecord:
        if self.role == "scanner" and not self.scanners:
            raise ValueError(f"key {self.name!r}: a scanner key names its scanners")
        if self.role != "scanner" and self.scanners:
            raise ValueError(f"key {self.name!r}: only scanner keys name scanners")
        return self

    def public(self) -> dict[str, object]:
        """What `atr keys list` shows: no hash in full (it identifies, it is not needed)."""
        return {"name": self.name, "role": self.role, "scanners": list(self.scanners),
                "created_at": self.created_at, "sha256_prefix": self.sha256[:12]}


class KeysFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    keys: list[KeyRecord] = []

    @model_validator(mode="after")
    def _unique(self) -> KeysFile:
        for attr in ("name", "sha256"):
            seen: set[str] = set()
            for rec in self.keys:
                if getattr(rec, attr) in seen:
                    raise ValueError(f"two keys with the same {attr} ({rec.name!r})")
                seen.add(getattr(rec, attr))
        return self


class KeyFileError(ValueError):
    """The keys file exists but cannot be read or is not a valid registry (named)."""


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def read_keys(path: Path) -> KeysFile:
    """The registry in `path` (an empty one if the file does not exist)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return KeysFile()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    try:
        return KeysFile.model_validate(yaml.safe_load(text) or {})
    except yaml.YAMLError as exc:
        raise KeyFileError(f"{path}: not valid YAML ({exc})") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "file"
        raise KeyFileError(f"{path}: {where}: {first['msg']}") from exc


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One writer at a time (two `atr keys issue` at once must not lose a key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _write(path: Path, doc: KeysFile) -> None:
    body = HEADER + yaml.safe_dump(doc.model_dump(mode="json"), sort_keys=False)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash
    finally:
        os.close(dir_fd)


def add_key(path: Path, name: str, role: str, scanners: tuple[str, ...] = (),
            token: str | None = None, replace: bool = False) -> tuple[str, KeyRecord]:
    """Add a key (a new random one unless `token` is given); (the key, its record).
    `replace`: a key of the same name is revoked in the same write."""
    if (role == "scanner") != bool(scanners):
        raise ValueError("keys.scanners: a scanner key names its scanners (--scanner ID, "
                         "repeatable); other roles name none")
    token = token or new_token()
    with _locked(path):
        doc = read_keys(path)
        if not replace and any(k.name == name for k in doc.keys):
            raise ValueError(f"a key named {name!r} exists in {path}: revoke it first or "
                             "choose another name")
        record = KeyRecord(name=name, role=role, scanners=tuple(scanners),  # type: ignore[arg-type]
                           sha256=digest(token),
                           created_at=datetime.now(UTC).isoformat(timespec="seconds"))
        _write(path, KeysFile(keys=[*(k for k in doc.keys if k.name != name), record]))
    return token, record


def revoke_key(path: Path, name: str) -> KeyRecord:
    with _locked(path):
        doc = read_keys(path)
        gone = [k for k in doc.keys if k.name == name]
        if not gone:
            raise LookupError(f"no key named {name!r} in {path}")
        _write(path, KeysFile(keys=[k for k in doc.keys if k.name != name]))
    return gone[0]


class KeyRegistry:
    """The service's view of the keys file: `lookup(token)` -> the key's record or None.
    A file that became invalid raises KeyFileError at each lookup until it is fixed
    (no key is trusted from a registry that cannot say which keys were revoked)."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path else None
        self._by_digest: dict[str, KeyRecord] = {}
        self._seen: tuple[int, int, int] | None = None
        self._checked = -STAT_EVERY_S
        self._error: KeyFileError | None = None
        self.reloads = 0
        self._refresh()  # at start: the log says at once how many keys the replica accepts

    def lookup(self, token: str) -> KeyRecord | None:
        self._refresh()
        if self._error is not None:
            raise self._error
        return self._by_digest.get(digest(token))

    def _refresh(self) -> None:
        now = time.monotonic()
        if self.path is None or now - self._checked < STAT_EVERY_S:
            return
        self._checked = now
        try:
            st = os.stat(self.path)
            seen = (st.st_ino, st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            seen = (0, 0, 0)  # no file: no keys (every call refused)
        except OSError as exc:
            self._error = KeyFileError(f"{self.path}: cannot stat ({exc.strerror or exc})")
            return
        if seen == self._seen:
            return
        try:
            doc = read_keys(self.path)
        except KeyFileError as exc:
            if self._error is None or str(exc) != str(self._error):
                log.error("every key refused until the keys file is fixed: %s", exc)
            self._error = exc  # keep checking: the next valid write clears it
            return
        self._by_digest = {k.sha256: k for k in doc.keys}
        self._seen, self._error = seen, None
        self.reloads += 1
        roles = sorted({k.role for k in doc.keys})
        if doc.keys:
            log.info("keys file %s: %d keys (%s)", self.path, len(doc.keys), ", ".join(roles))
        else:
            log.warning("no API keys in %s: every scan, verdict and safe-mode change is "
                        "refused (atr keys issue ...)", self.path)

    @property
    def configured(self) -> bool:
        return self.path is not None
