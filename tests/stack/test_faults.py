"""Faults survived by the distributed stack (issue 14 section 2), real processes: a replica
SIGKILLed under load, PostgreSQL restarted under load, the object store down, a full disk
under a replica's image store. Each ends with every acknowledged decision (a 200) in the
PostgreSQL store, no item CLEARed by a fault path, and every answer a decision body or a
clear 503."""

from __future__ import annotations

import io
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import psycopg
import pytest
from helpers.images import png_bytes
from helpers.stack import Load, Shot, wait_balanced
from PIL import Image

from atr.demo_service import free_port
from atr.package.reasons import FAILSAFE_REASONS, STORE_ERROR
from atr.stack.replica import Replica
from atr.stack.stack import Stack

pytestmark = pytest.mark.slow

PNG = png_bytes((255, 140, 0))


def stored(stack: Stack, column: str, values: set[str]) -> set[str]:
    """Which of `values` (request_id or item_id) have a row in the PostgreSQL store."""
    with psycopg.connect(stack.postgres.url().replace("postgresql+psycopg", "postgresql")
                         ) as conn:
        rows = conn.execute(f"SELECT {column} FROM predictions WHERE {column} = ANY(%s)",
                            (list(values),)).fetchall()
    return {r[0] for r in rows}


def check_honest(stack: Stack, shots: list[Shot], no_answer_ok: bool = False
                 ) -> dict[str, int]:
    """Every 200 stored; every other answer a 503 with an INSPECT, `stored: false` body
    (or, with `no_answer_ok`, no answer at all: a request in flight on a replica that was
    killed, which the line INSPECTs as it does any unanswered item); no fail-safe path
    CLEARs. Returns the count per status (0: no answer)."""
    acked = {s.body["request_id"] for s in shots if s.status == 200}
    missing = acked - stored(stack, "request_id", acked)
    assert not missing, f"{len(missing)} acknowledged decisions are not in the store"
    for s in shots:
        body = s.body if isinstance(s.body, dict) else {}
        if s.status == 200:
            assert body["stored"] is True
        elif s.status == 0 and no_answer_ok:
            continue
        else:
            # the replica's 503, or HAProxy's (a replica died mid-reply): a decision body
            assert s.status == 503, f"{s.item_id}: {s.status} {s.body!r}"
            assert body["decision"] == "INSPECT" and body["stored"] is False, s
        if body.get("reason") in FAILSAFE_REASONS or s.status != 200:
            assert body.get("decision", "INSPECT") != "CLEAR", s
    counts: dict[str, int] = {}
    for s in shots:
        counts[str(s.status)] = counts.get(str(s.status), 0) + 1
    return counts


def post(stack: Stack, url: str, item: str, data: bytes = PNG) -> httpx.Response:
    return httpx.post(f"{url}/v1/scans", content=data, timeout=20, trust_env=False,
                      params={"item_id": item, "scanner_id": "S1"},
                      headers={"Content-Type": "image/png",
                               "X-API-Key": stack.secrets["scanner_key"]})


def test_only_the_reviewer_may_move_champion_on_the_stacks_mlflow(stack: Stack) -> None:
    """The stack's MLflow requires a login; the replicas' reader account (what a leaked
    replica environment gives) is refused the move too; the champion stays put."""
    from atr.stack.tracking import ACCOUNTS, credentials

    url = f"{stack.spec.mlflow_url}/api/2.0/mlflow/registered-models/alias"
    move = {"name": stack.spec.model_name, "alias": "champion", "version": "1"}
    assert httpx.post(url, json=move, trust_env=False).status_code == 401
    reader = credentials(stack.secrets, "reader")
    r = httpx.post(url, json=move, trust_env=False, auth=(
        reader["MLFLOW_TRACKING_USERNAME"], reader["MLFLOW_TRACKING_PASSWORD"]))
    assert r.status_code == 403, r.text
    assert (stack.dir / "secrets.json").stat().st_mode & 0o077 == 0
    logs = "".join(f.read_text(errors="replace") for f in stack.dir.rglob("*.log"))
    assert not [k for k, v in stack.secrets.items() if v in logs]  # no secret logged
    # the accounts live in the stack's PostgreSQL (database mlflow_auth), not in SQLite
    with psycopg.connect(stack.postgres.url("mlflow_auth").replace("postgresql+psycopg",
                                                                    "postgresql")) as conn:
        users = {r[0] for r in conn.execute("SELECT username FROM users").fetchall()}
    assert {"admin", *ACCOUNTS.values()} <= users


def test_replica_killed_under_load(stack: Stack) -> None:
    """SIGKILL one replica mid-load: HAProxy moves traffic to the other (its retries resend
    what the dead one never answered); at most the requests in flight there fail."""
    victim, survivor = stack.replicas
    with Load(stack.balancer.url, threads=8, prefix="kill", image=PNG,
              key=stack.secrets["scanner_key"]) as load:
        load.wait_for(40)
        victim.kill()
        killed_at = time.monotonic()
        time.sleep(3.0)
        load.wait_for(len(load.shots) + 40)
    after = [s for s in load.shots if s.at > killed_at + 2.0]
    assert after and all(s.status == 200 for s in after), "traffic did not move over"
    failed = [s for s in load.shots if s.status != 200]
    assert len(failed) <= load.threads, failed  # only what was in flight on the victim
    counts = check_honest(stack, load.shots, no_answer_ok=True)
    print(f"replica SIGKILL under load: {counts} of {len(load.shots)}")
    assert survivor.running
    victim.start()
    victim.wait("/ready", 90)
    wait_balanced(stack)


def test_postgres_restart_under_load(stack: Stack) -> None:
    """PostgreSQL down: the replicas answer 503 store_error (never a silent 200); back up,
    they store again, the same processes (no restart)."""
    pids = [r.child.pid for r in stack.replicas if r.child]
    with Load(stack.balancer.url, threads=6, prefix="pg", image=PNG,
              key=stack.secrets["scanner_key"]) as load:
        load.wait_for(30)
        stack.postgres.stop()
        down_at = time.monotonic()
        time.sleep(2.0)
        direct = post(stack, stack.replicas[1].url, "pg-direct")
        restart_at = time.monotonic()  # from here it may accept logins again
        stack.postgres.start()
        time.sleep(3.0)
        load.wait_for(len(load.shots) + 30)
    assert direct.status_code == 503
    assert direct.json()["reason"] == STORE_ERROR and direct.json()["decision"] == "INSPECT"
    during = [s for s in load.shots if down_at + 0.5 < s.at < restart_at]
    assert during, "no request answered while PostgreSQL was down"
    wrong = [s for s in during if s.status != 503 or s.body["reason"] != STORE_ERROR]
    assert not wrong, wrong[:5]
    assert all(s.status == 200 for s in load.shots[-20:]), "no recovery after the restart"
    assert [r.child.pid for r in stack.replicas if r.child] == pids
    assert all(r.running for r in stack.replicas)
    counts = check_honest(stack, load.shots)
    print(f"PostgreSQL restart under load: {counts} of {len(load.shots)}")


def test_object_store_down(stack: Stack) -> None:
    """S3 down: the item is refused (503 store_error, INSPECT, stored false, no row) rather
    than acknowledged without its image; back up, images are stored again."""
    t0 = time.monotonic()
    stack.objects.stop()
    t1 = time.monotonic()
    try:
        # new images: one already stored needs no PUT (same bytes, same address) and
        # succeeds, rightly
        answers = [post(stack, url, f"s3-down-{i}", png_bytes((i, 200, 30))) for i, url in
                   enumerate([stack.balancer.url, *(r.url for r in stack.replicas)])]
        t2 = time.monotonic()
    finally:
        stack.objects.start()
    print(f"object store down: stop {t1 - t0:.1f} s, 3 refusals {t2 - t1:.1f} s, "
          f"start {time.monotonic() - t2:.1f} s")
    for r in answers:
        assert r.status_code == 503, r.text
        body = r.json()
        assert (body["decision"], body["reason"], body["stored"]) == ("INSPECT", STORE_ERROR,
                                                                      False)
    assert not stored(stack, "item_id", {f"s3-down-{i}" for i in range(len(answers))})
    wait_balanced(stack)
    back = post(stack, stack.balancer.url, "s3-back", png_bytes((250, 130, 10)))
    assert back.status_code == 200, back.text
    with psycopg.connect(stack.postgres.url().replace("postgresql+psycopg", "postgresql")
                         ) as conn:
        ref = conn.execute("SELECT image_ref FROM predictions WHERE item_id = 's3-back'"
                           ).fetchone()[0]
    from atr.store.s3_images import S3ImageStore

    images = S3ImageStore(stack.spec.image_store, client=stack.objects.client())
    assert images.get(ref) == png_bytes((250, 130, 10))


def _noise_png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (160, 160, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()  # ~77 kB: noise does not compress


def _small_filesystem(mount_point: Path, tmp: Path) -> str:
    """A 2 MB filesystem at `mount_point`: tmpfs, else a loop device; the way to undo it."""
    mount_point.mkdir(parents=True)
    tmpfs = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
                           capture_output=True, text=True)
    if tmpfs.returncode == 0:
        return "tmpfs"
    image = tmp / "disk.img"
    subprocess.run(["truncate", "-s", "4M", str(image)], check=True)
    steps = [["mkfs.ext4", "-q", str(image)], ["mount", "-o", "loop", str(image),
                                               str(mount_point)]]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"no small filesystem here: tmpfs: {tmpfs.stderr.strip()}; "
                        f"loop: {done.stderr.strip()}")
    return "loop"


def test_full_disk_under_the_image_store(stack: Stack, tmp_path: Path) -> None:
    """A replica whose local image store is a 2 MB filesystem: once it is full, the item is
    refused (503 store_error, INSPECT, no row) instead of a row without its image; the
    items acknowledged before are stored with their image on that disk."""
    mount_point = tmp_path / "images"
    _small_filesystem(mount_point, tmp_path)
    replica: Replica | None = None
    try:
        overrides = [o for o in stack.replica_overrides()
                     if not o.startswith("paths.image_store=")]
        replica = Replica("full-disk", tmp_path / "replica", free_port(),
                          [*overrides, f"paths.image_store={mount_point}"], stack.replica_env())
        replica.start()
        replica.wait("/ready", 90)
        answers: list[tuple[str, httpx.Response]] = []
        for i in range(40):
            answers.append((f"disk-{i}", post(stack, replica.url, f"disk-{i}", _noise_png(i))))
    finally:
        if replica is not None:
            replica.stop()
        subprocess.run(["umount", "-l", str(mount_point)], check=False)
    codes = [r.status_code for _, r in answers]
    assert 200 in codes and 503 in codes, codes  # it filled up, and it said so
    ok = {item: r.json() for item, r in answers if r.status_code == 200}
    refused = {item: r.json() for item, r in answers if r.status_code == 503}
    assert all(b["reason"] == STORE_ERROR and b["decision"] == "INSPECT"
               and b["stored"] is False for b in refused.values())
    assert stored(stack, "item_id", set(ok)) == set(ok)
    assert not stored(stack, "item_id", set(refused))
    print(f"full disk: {len(ok)} stored, then {len(refused)} refused (503 store_error)")

