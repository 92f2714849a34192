"""Celery plumbing as Celery's tools expect it: one exchange and routing key per queue,
and Flower's broker view against a real worker."""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from kombu import Connection, Exchange, Producer

from tests.conftest import ROOT, WorkerProcess, wait_for
from worker.transport import broker, poison
from worker.transport.app import BULK_QUEUE, PAYMENTS_QUEUE, QUEUES, app
from worker.transport.redis_client import get_redis, redis_url


def _bindings(exchange: str) -> set[bytes]:
    return {bytes(m) for m in get_redis().smembers(f"_kombu.binding.{exchange}")}


def test_each_queue_has_its_own_exchange_and_routing_key(session_worker: WorkerProcess) -> None:
    for queue in app.amqp.queues.values():
        assert (queue.exchange.name, queue.routing_key) == (queue.name, queue.name)
    for name in QUEUES:  # what the worker declared in Redis: one binding, to its queue
        assert _bindings(name) == {f"{name}\x06\x16\x06\x16{name}".encode()}


def test_a_publish_to_an_exchange_reaches_only_its_queue(
    session_worker: WorkerProcess, start_worker: Any
) -> None:
    """Published by exchange, as a producer that knows AMQP routing would, a message lands
    in that exchange's queue alone. (It carries no task, so the queue's worker moves it to
    the poison list, which names the queue it came from.)"""
    redis = get_redis()
    # Bindings an older version left (every queue under one exchange) go when a worker starts.
    redis.sadd(f"_kombu.binding.{BULK_QUEUE}", f"{BULK_QUEUE}\x06\x16\x06\x16{PAYMENTS_QUEUE}")
    start_worker("plumbing", concurrency=1)
    assert _bindings(BULK_QUEUE) == {f"{BULK_QUEUE}\x06\x16\x06\x16{BULK_QUEUE}".encode()}
    marker = uuid.uuid4().hex
    with Connection(redis_url()) as conn:
        producer = Producer(conn.channel())
        producer.publish(
            {"not": "a task"},
            exchange=Exchange(BULK_QUEUE, type="direct"),
            routing_key=BULK_QUEUE,
            headers={"marker": marker},
        )

    def copies() -> list[str] | None:
        queued = any(marker.encode() in m for q in QUEUES for m in redis.lrange(q, 0, -1))
        found = [e.queue for e in poison.entries(500) if marker.encode() in e.raw]
        return None if queued or not found else found

    assert wait_for(copies, 30) == [BULK_QUEUE]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def flower(session_worker: WorkerProcess, base_env: dict[str, str]) -> Iterator[str]:
    port = _free_port()
    env = {**base_env, "FLOWER_UNAUTHENTICATED_API": "true"}
    command = [sys.executable, "-m", "celery", "-A", "worker.transport.app", "flower"]
    command += [f"--port={port}", "--address=127.0.0.1"]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(f"{url}/healthcheck"), 60, interval=0.5)
        yield url
    finally:
        process.terminate()
        process.wait(30)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_flower_reads_the_broker(flower: str) -> None:
    def lengths() -> Any:
        response = httpx.get(f"{flower}/api/queues/length", timeout=10)
        assert response.status_code == 200, response.text
        found = {q["name"] for q in response.json()["active_queues"]}
        return found if set(QUEUES) <= found else None

    assert set(QUEUES) <= wait_for(lengths, 60, interval=1)
    page = httpx.get(f"{flower}/broker", timeout=10)
    assert page.status_code == 200
    assert "not supported" not in page.text
    assert "redis://" in page.text


def test_a_channel_reuses_one_redis_client_and_a_closed_one_still_fails() -> None:
    """kombu builds a redis-py client per push and acknowledgement; ours keeps one per
    pool. A closed channel (broker connection lost) still refuses as kombu's does, which
    the QoS repair in worker/transport/broker.py relies on."""
    with Connection(redis_url(), transport=broker.Transport) as conn:
        channel = conn.channel()
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
            assert first is second
            assert first.ping()
        channel.close()
        with pytest.raises(AttributeError), channel.conn_or_acquire():
            pass
