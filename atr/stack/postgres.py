"""A PostgreSQL 15 server on loopback, in a data folder of its own: the prediction store and
the MLflow backend of the distributed stack, and the tests' real engine.

Debian's `postgresql` binaries (/usr/lib/postgresql/15/bin, or $ATR_PG_BIN) rather than a
pip-bundled server: the same build an operations team runs, security-patched by apt.
PostgreSQL refuses to run as root, so as root the data folder is given to the `postgres`
system user and the server runs as that user (subprocess `user=`, no wrapper process in
between, so stop() signals the postmaster itself). TCP on 127.0.0.1 only, no Unix socket.

    pg = PostgresServer(tmp / "pg", free_port()).start()   # -> postgresql+psycopg://...
    pg.create_database("mlflow"); pg.restart(); pg.stop()
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

DEFAULT_BIN = Path("/usr/lib/postgresql/15/bin")
SYSTEM_USER = "postgres"  # who runs the server when we are root


class PostgresError(RuntimeError):
    """The server could not be initialised, started or stopped (its log is quoted)."""


def pg_bin() -> Path:
    found = Path(os.environ.get("ATR_PG_BIN", DEFAULT_BIN))
    if not (found / "postgres").is_file():
        raise PostgresError(f"no PostgreSQL binaries in {found} (apt-get install "
                            "postgresql-15, or set ATR_PG_BIN)")
    return found


class PostgresServer:
    """initdb (once) + postgres on 127.0.0.1:`port`; superuser `user`, database `database`.

    With `password` the TCP login needs it (scram-sha-256); without, loopback is trusted
    (tests)."""

    def __init__(self, data_dir: str | Path, port: int, user: str = "atr",
                 password: str | None = None, database: str = "atr") -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port, self.user, self.password, self.database = port, user, password, database
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._as_root = os.geteuid() == 0

    # -- lifecycle ---------------------------------------------------------------------
    def start(self, timeout_s: float = 60.0) -> str:
        """Initialise the folder if new, start the server, wait until it accepts logins,
        create the database; returns its SQLAlchemy URL."""
        if self._proc is not None and self._proc.poll() is None:
            return self.url()
        if not (self.data_dir / "PG_VERSION").is_file():
            self._initdb()
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child holds it
        try:
            self._proc = subprocess.Popen(
                [str(pg_bin() / "postgres"), "-D", str(self.data_dir), "-p", str(self.port),
                 "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
                 "-c", "fsync=on"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, **self._user_kwargs())
        finally:
            log.close()
        # An owner that dies on an exception (not SIGKILL) still stops its server at exit.
        atexit.register(_stop_at_exit, self._proc)
        self._wait_ready(timeout_s)
        self.create_database(self.database)
        return self.url()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Fast shutdown (SIGINT: open sessions are ended, committed data is kept)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def restart(self, down_s: float = 0.0, timeout_s: float = 60.0) -> str:
        """Stop, stay down `down_s` seconds (a fault test's outage), start again."""
        self.stop()
        time.sleep(down_s)
        return self.start(timeout_s)

    def kill(self) -> None:
        """SIGKILL the postmaster (a crash; the next start recovers from the WAL)."""
        if self._proc is not None and self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(10)
        self._proc = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses ---------------------------------------------------------------------
    def url(self, database: str | None = None, driver: str = "postgresql+psycopg") -> str:
        auth = self.user + (f":{quote(self.password, safe='')}" if self.password else "")
        return f"{driver}://{auth}@127.0.0.1:{self.port}/{database or self.database}"

    def create_database(self, name: str) -> str:
        """CREATE DATABASE `name` unless it exists; returns its URL."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(**self._conninfo("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                  (name,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    # -- internals ---------------------------------------------------------------------
    def _conninfo(self, dbname: str) -> dict[str, Any]:
        info: dict[str, Any] = dict(host="127.0.0.1", port=self.port, user=self.user,
                                    dbname=dbname, connect_timeout=3)
        if self.password:
            info["password"] = self.password
        return info

    def _user_kwargs(self) -> dict[str, Any]:
        return {"user": SYSTEM_USER, "group": SYSTEM_USER, "extra_groups": []} \
            if self._as_root else {}

    def _initdb(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if any(self.data_dir.iterdir()):
            raise PostgresError(f"{self.data_dir}: not empty and not a PostgreSQL data folder")
        args = [str(pg_bin() / "initdb"), "-D", str(self.data_dir), "-U", self.user,
                "-E", "UTF8", "--locale=C.UTF-8", "--auth-local=trust"]
        pwfile = self.data_dir.parent / f".{self.data_dir.name}.pw"
        if self.password:
            pwfile.write_text(self.password)
            args += ["--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
        else:
            args += ["--auth-host=trust"]
        if self._as_root:
            self._give_to_system_user(pwfile if self.password else None)
        try:
            done = subprocess.run(args, capture_output=True, text=True,
                                  **self._user_kwargs())
        finally:
            pwfile.unlink(missing_ok=True)
        if done.returncode != 0:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            raise PostgresError(f"initdb {self.data_dir} failed:\n{done.stdout}{done.stderr}")

    def _give_to_system_user(self, pwfile: Path | None) -> None:
        """The data folder (and the password file) owned by `postgres`; every folder above
        it searchable (o+x, not readable) so the server can reach it from a 0700 tmp."""
        shutil.chown(self.data_dir, SYSTEM_USER, SYSTEM_USER)
        self.data_dir.chmod(0o700)
        if pwfile is not None:
            shutil.chown(pwfile, SYSTEM_USER, SYSTEM_USER)
            pwfile.chmod(0o600)
        for parent in self.data_dir.parents:
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                parent.chmod(mode | stat.S_IXOTH)
        log = self.log_path
        log.touch()
        shutil.chown(log, SYSTEM_USER, SYSTEM_USER)

    def _wait_ready(self, timeout_s: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout_s
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                raise PostgresError(f"postgres exited ({self._proc.returncode}) on port "
                                    f"{self.port}:\n{self._log_tail()}")
            try:
                with psycopg.connect(**self._conninfo("postgres")):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise PostgresError(f"postgres on port {self.port} not ready after "
                                        f"{timeout_s:.0f} s:\n{self._log_tail()}") from None
                time.sleep(0.1)

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _stop_at_exit(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
