"""The bundled Redis server starts and stops cleanly from an empty directory."""

from __future__ import annotations

from pathlib import Path

import redis

from worker.embedded_redis import EmbeddedRedis


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
