"""The bundled Redis server starts and stops cleanly from an empty directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import redis

from worker.transport.embedded_redis import EmbeddedRedis


def test_starts_persists_and_stops(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis").start()
    client = redis.Redis.from_url(server.url)
    client.set("k", "v")
    server.stop()
    assert server.process is not None and server.process.returncode is not None
    assert any((tmp_path / "redis").rglob("*.aof*"))
    again = EmbeddedRedis(tmp_path / "redis").start()
    try:
        assert redis.Redis.from_url(again.url).get("k") == b"v"
    finally:
        again.stop()


_USER = """
import sys
import subprocess
import sys
from pathlib import Path
from worker.transport.embedded_redis import shared_redis_url
print(shared_redis_url(Path(sys.argv[1])), flush=True)
sys.stdin.readline()  # stays a user until told to exit
"""


def test_shared_server_stops_with_its_last_user_not_its_first(tmp_path: Path) -> None:
    def user() -> tuple[subprocess.Popen[str], str]:
        process = subprocess.Popen(
            [sys.executable, "-c", _USER, str(tmp_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        return process, process.stdout.readline().strip()

    def leave(process: subprocess.Popen[str]) -> None:
        assert process.stdin is not None
        process.stdin.write("\n")
        process.stdin.flush()
        assert process.wait(timeout=30) == 0

    first, url = user()
    second, same = user()
    assert same == url
    leave(first)  # it started the server, but the second still uses it
    assert redis.Redis.from_url(url).ping()
    leave(second)
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(url, socket_timeout=2).ping()
