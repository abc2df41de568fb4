"""A real S3-compatible server for tests: moto in server mode (its own process) on 127.0.0.1,
on a free port,
and a TCP proxy in front of it that can break a transfer in the middle (a store that fails).

``S3Server.options(endpoint)`` gives the ``STORAGES["default"]["OPTIONS"]`` of
``batchserver.object_storage.ObjectStorage`` for it; ``S3Server.environment(endpoint)`` the
variables a started process (gunicorn, qcluster) needs for the same (``STORAGE_BACKEND=s3`` …).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

ACCESS_KEY, SECRET_KEY, REGION = "testing", "testing", "us-east-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class S3Server:
    """moto's S3 on ``url``, with one bucket per test."""

    url: str
    bucket: str

    def client(self, endpoint: str | None = None) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=endpoint or self.url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def keys(self) -> list[str]:
        """Every object visible in the bucket (asked of the server directly, never the proxy)."""
        answer = self.client().list_objects_v2(Bucket=self.bucket)
        return sorted(item["Key"] for item in answer.get("Contents", []))

    def read(self, key: str) -> bytes:
        return self.client().get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def options(self, endpoint: str | None = None) -> dict[str, Any]:
        return {
            "bucket_name": self.bucket,
            "endpoint_url": endpoint or self.url,
            "region_name": REGION,
            "access_key": ACCESS_KEY,
            "secret_key": SECRET_KEY,
            "addressing_style": "path",
            "signature_version": "s3v4",
            "location": "batchserver",
            "default_acl": None,
            "querystring_auth": True,
            "file_overwrite": True,
        }

    def environment(self, endpoint: str | None = None) -> dict[str, str]:
        return {
            "STORAGE_BACKEND": "s3",
            "AWS_STORAGE_BUCKET_NAME": self.bucket,
            "AWS_S3_ENDPOINT_URL": endpoint or self.url,
            "AWS_S3_REGION_NAME": REGION,
            "AWS_S3_ADDRESSING_STYLE": "path",
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        }


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """Start moto's S3 server in a process of its own (its memory is not ours); yield its URL."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def new_bucket(url: str) -> S3Server:
    server = S3Server(url, f"bs-test-{uuid.uuid4().hex[:12]}")
    server.client().create_bucket(Bucket=server.bucket)
    return server


class FlakyProxy:
    """A TCP proxy to ``port`` that cuts every connection once ``break_after(n)`` more bytes
    went from the client to the store, and refuses new ones until ``heal()``."""

    def __init__(self, port: int) -> None:
        self.target = ("127.0.0.1", port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.budget: int | None = None
        self.broken = False
        self.cut_at_least_once = False
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def break_after(self, budget: int) -> None:
        with self._lock:
            self.budget, self.broken = budget, False

    def heal(self) -> None:
        with self._lock:
            self.budget, self.broken = None, False

    def close(self) -> None:
        self._closing = True
        self.listener.close()
        self._cut_all()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.broken:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open |= {client, upstream}
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, to_store: bool) -> None:
        try:
            while data := source.recv(65536):
                if to_store and not self._spend(len(data)):
                    self._cut_all()
                    return
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _spend(self, size: int) -> bool:
        with self._lock:
            if self.broken:
                return False
            if self.budget is None:
                return True
            self.budget -= size
            if self.budget < 0:
                self.broken = self.cut_at_least_once = True
                return False
            return True

    def _cut_all(self) -> None:
        with self._lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
