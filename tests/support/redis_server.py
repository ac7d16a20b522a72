"""A real Redis for tests: the one on 127.0.0.1:6379 when it answers, else a ``redis-server`` this
module starts on a free port (no persistence) and stops at exit. Each test gets its own key prefix
and its keys are deleted afterwards (``prefixed``)."""

from __future__ import annotations

import atexit
import shutil
import socket
import subprocess
import tempfile
import time
import uuid

_URL: str | None = None


def _answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=1).ping())
    except Exception:  # noqa: BLE001 - any failure means "not usable"
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(port: int, *, appendonly: bool = False, workdir: str | None = None) -> subprocess.Popen:
    """Start ``redis-server`` on ``port`` (127.0.0.1) and wait until it answers."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("no Redis on 127.0.0.1:6379 and no redis-server binary to start one")
    workdir = workdir or tempfile.mkdtemp(prefix="neuroscribe-redis-")
    args = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", workdir,
            "--appendonly", "yes" if appendonly else "no", "--appendfsync", "always"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(200):
        if _answers(url):
            return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"redis-server did not start on port {port}")


def redis_url() -> str:
    global _URL
    if _URL is None:
        if _answers("redis://127.0.0.1:6379/0"):
            _URL = "redis://127.0.0.1:6379/0"
        else:
            port = free_port()
            proc = start_redis(port)
            atexit.register(proc.kill)
            _URL = f"redis://127.0.0.1:{port}/0"
    return _URL


def unique_prefix() -> str:
    return f"nstest-{uuid.uuid4().hex[:12]}"


def delete_prefix(client, prefix: str) -> None:
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
