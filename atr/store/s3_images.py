"""The image store on an S3 object store (`image_store: s3://bucket/prefix`): what replicas
on several machines share, with the interface of the local ImageStore (put / put_many /
get / delete / `in`, content-addressed references `<sha256><ext>`).

An image is the object `<prefix>/<sha[:2]>/<sha[2:4]>/<ref>`. A PUT that returned is on the
object store (its own durability: replication or erasure coding in production), so
`put_many` returns a reference only after its PUT succeeded; a failed PUT is that item's
OSError, as a failed local write is. The serving line then refuses the item with 503
store_error rather than acknowledge a decision whose image is not stored (docs/stack.md).

Where: the endpoint is $ATR_S3_ENDPOINT_URL (else boto3's own AWS_ENDPOINT_URL_S3 /
AWS_ENDPOINT_URL, else AWS itself); credentials and region come from boto3's usual chain
(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile, an instance role). Timeouts are
short: while the object store is down a request must fail inside its time budget, not
hang in retries.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Executor
from typing import Any
from urllib.parse import urlparse

from atr.store.image_store import ImageStoreError, guess_extension, image_ref_sha

ENDPOINT_ENV = "ATR_S3_ENDPOINT_URL"
CONNECT_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 5.0


def s3_client(endpoint_url: str | None = None) -> Any:
    """A boto3 S3 client on `endpoint_url` or $ATR_S3_ENDPOINT_URL, short timeouts, path-style
    addressing (what S3-compatible servers on one host name expect)."""
    import boto3
    from botocore.config import Config

    endpoint = endpoint_url or os.environ.get(ENDPOINT_ENV) or None
    config = Config(connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S,
                    retries={"max_attempts": 2, "mode": "standard"},
                    s3={"addressing_style": "path"}, max_pool_connections=32)
    region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1"
    return boto3.client("s3", endpoint_url=endpoint, region_name=region, config=config)


def parse_s3_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> (bucket, "some/prefix"); a URL without a bucket is refused."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"image_store={url!r}: expected s3://bucket[/prefix]")
    return parsed.netloc, parsed.path.strip("/")


class S3ImageStore:
    """put(bytes) -> ref, get(ref) -> bytes, delete(ref) -> bool on s3://bucket/prefix."""

    _KNOWN_MAX = 100_000  # refs PUT by this process: a re-sent image costs no request ...
    # ... for an hour: `atr store prune` (another process) may delete an old image, and a
    # remembered ref must never outlive the shortest retention period (a day)
    _KNOWN_TTL_S = 3600.0

    def __init__(self, url: str, client: Any | None = None) -> None:
        self.url = url
        self.bucket, self.prefix = parse_s3_url(url)
        self.client = client if client is not None else s3_client()
        self._known: OrderedDict[str, float] = OrderedDict()  # ref -> when PUT (monotonic)
        self._lock = threading.Lock()

    def key(self, ref: str) -> str:
        sha = image_ref_sha(ref)
        parts = [self.prefix] if self.prefix else []
        return "/".join([*parts, sha[:2], sha[2:4], ref])

    def put(self, data: bytes, filename: str | None = None) -> str:
        result = self.put_many([(data, filename)])[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def put_many(self, items: Sequence[tuple[bytes, str | None]],
                 executor: Executor | None = None) -> list[str | OSError]:
        """PUT each (bytes, filename); per item its reference or the OSError that kept it
        out. With `executor` the PUTs run concurrently in it."""
        refs = [hashlib.sha256(data).hexdigest() + guess_extension(data, name)
                for data, name in items]
        todo: dict[str, bytes] = {}
        for ref, (data, _) in zip(refs, items, strict=True):
            if ref not in todo and not self._is_known(ref):
                todo[ref] = data
        if executor is not None and len(todo) > 1:
            results = list(executor.map(self._put_one, todo.items()))
        else:
            results = [self._put_one(item) for item in todo.items()]
        failed = {ref: err for ref, err in zip(todo, results, strict=True) if err is not None}
        return [failed.get(ref, ref) for ref in refs]

    def _put_one(self, item: tuple[str, bytes]) -> OSError | None:
        ref, data = item
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.key(ref), Body=data)
        except Exception as exc:  # botocore's errors: one item's failure, reported as OSError
            return OSError(f"object store {self.url}: PUT {ref} failed: {exc}")
        with self._lock:
            self._known[ref] = time.monotonic()
            while len(self._known) > self._KNOWN_MAX:
                self._known.popitem(last=False)
        return None

    def _is_known(self, ref: str) -> bool:
        with self._lock:
            put_at = self._known.get(ref)
            if put_at is None:
                return False
            if time.monotonic() - put_at > self._KNOWN_TTL_S:
                del self._known[ref]  # PUT again: prune may have removed it since
                return False
            return True

    def get(self, ref: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.key(ref))["Body"].read()
        except ClientError as exc:
            if _not_found(exc):
                raise ImageStoreError(f"no image stored under {ref!r} ({self.url})") from exc
            raise

    def delete(self, ref: str) -> bool:
        """Remove a stored image (retention); False when none was there."""
        if ref not in self:
            return False
        self.client.delete_object(Bucket=self.bucket, Key=self.key(ref))
        with self._lock:
            self._known.pop(ref, None)
        return True

    def __contains__(self, ref: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            key = self.key(ref)
        except ImageStoreError:
            return False
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _not_found(exc):
                return False
            raise
        return True


def _not_found(exc: Any) -> bool:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in {"404", "NoSuchKey", "NotFound"}
