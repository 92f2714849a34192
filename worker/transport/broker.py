"""kombu's Redis transport, repaired so that a worker survives Redis going away.

Found by `ledgerpush chaos` (Celery 5.7, kombu 5.7): when the broker connection drops
while a worker holds delivered, unacknowledged messages,

1. the consumer closes the dead connection and kombu tries to push those messages back
   onto their queues through it; creating a client on the closed connection raises an
   AttributeError nobody catches, and Celery stops the worker ("Unrecoverable error");
2. after the reconnect, tasks that were running finish and acknowledge (or reject) their
   message through the old, closed channel: the same AttributeError, the same stop.

Both are skipped here when they cannot be done. Nothing is lost by skipping: the messages
are still in Redis's unacked hash (persisted with the AOF), and kombu hands them out
again after the visibility timeout; a copy of a job that already finished finds it
terminal in the ledger and does nothing. The worker reconnects and goes on.

It also checks every message as it comes off its queue, before kombu or Celery parse it
(worker/transport/poison.py): one that no task could run goes to the poison list instead of
stopping the worker or vanishing.
"""

from __future__ import annotations

import logging
from queue import Empty
from typing import Any

import redis
from kombu.transport import TRANSPORT_ALIASES, _transport_cache
from kombu.transport import redis as kombu_redis
from kombu.utils import json as kombu_json

from worker.settings import get_settings
from worker.transport import poison

log = logging.getLogger("ledgerpush.broker")
_GONE = (AttributeError, redis.RedisError)


class QoS(kombu_redis.QoS):
    def restore_unacked(self, client: Any = None) -> Any:
        try:
            return super().restore_unacked(client)  # type: ignore[no-untyped-call]
        except _GONE as exc:
            log.warning(
                "broker unreachable; %s delivered message(s) stay unacknowledged in Redis "
                "and return after the visibility timeout (%s)",
                len(self._delivered),
                exc,
            )
            self._delivered.clear()
            return None

    def ack(self, delivery_tag: Any) -> None:
        try:
            super().ack(delivery_tag)  # type: ignore[no-untyped-call]
        except _GONE as exc:
            self._forget(delivery_tag, "acknowledge", exc)

    def reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        try:
            super().reject(delivery_tag, requeue=requeue)  # type: ignore[no-untyped-call]
        except _GONE as exc:
            self._forget(delivery_tag, "reject", exc)

    def _forget(self, delivery_tag: Any, what: str, exc: Exception) -> None:
        self._delivered.pop(delivery_tag, None)
        log.warning(
            "could not %s message %s on a lost broker connection (%s); it returns after "
            "the visibility timeout",
            what,
            delivery_tag,
            exc,
        )


class Channel(kombu_redis.Channel):
    QoS = QoS
    _sync_client: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        """kombu builds a new redis-py client (whose constructor alone costs ~60 µs) for
        every push, acknowledgement and queue-expiry refresh: one per pool is enough, as
        a client is only a view on its thread-safe pool. A closed channel still fails
        here as kombu's does (it has no pool left), which the QoS above relies on."""
        if asynchronous:
            return super()._create_client(asynchronous=True)  # type: ignore[no-untyped-call]
        pool = self.pool
        client = self._sync_client
        if client is None or client.connection_pool is not pool:
            client = self._sync_client = super()._create_client()  # type: ignore[no-untyped-call]
        return client

    def _brpop_read(self, **options: Any) -> bool:
        """kombu's, with the message checked before it is parsed and delivered."""
        try:
            try:
                dest_item = self.client.parse_response(self.client.connection, "BRPOP", **options)
            except self.connection_errors:
                # As kombu: disconnect, so that the next round reconnects.
                self.client.connection.disconnect()
                raise
            if not dest_item:
                raise Empty()
            dest, item = dest_item
            queue = bytes(dest).decode().rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(queue)
            message = self._checked(queue, item)
            if message is not None:
                self.connection._deliver(message, queue)
            return True
        finally:
            self._in_poll = None  # type: ignore[assignment]

    def _get(self, queue: Any, timeout: Any = None) -> Any:
        while True:
            message = self._checked(queue, self._get_raw(queue))
            if message is not None:
                return message

    def _get_raw(self, queue: str) -> bytes:
        with self.conn_or_acquire() as client:
            for pri in self.priority_steps:
                key = self._q_for_pri(queue, pri)  # type: ignore[no-untyped-call]
                item = client.rpop(key)
                if item:
                    self._maybe_update_queues_expire(client, queue)  # type: ignore[no-untyped-call]
                    return bytes(item)
            self._maybe_update_queues_expire(client, queue)  # type: ignore[no-untyped-call]
            raise Empty()

    def _checked(self, queue: str, raw: bytes) -> dict[str, Any] | None:
        """The parsed message, or None when it went to the poison list. Only ledgerpush's
        queues are checked: Celery's own (remote-control replies) carry no tasks."""
        from worker.transport.app import app  # the app imports this module (its broker transport)

        if not queue.startswith(poison.QUEUE_PREFIX):
            parsed: dict[str, Any] = kombu_json.loads(raw.decode())  # type: ignore[no-untyped-call]
            return parsed
        try:
            return poison.check(raw, app.tasks, get_settings().max_message_bytes)
        except poison.PoisonMessage as bad:
            try:
                with self.conn_or_acquire() as client:
                    poison.quarantine(client, queue, raw, bad)
            except redis.RedisError as exc:
                log.error(
                    "poison message on %s (%s) could not be kept, Redis failed (%s); "
                    "its %d bytes are lost",
                    queue,
                    bad.reason,
                    exc,
                    len(raw),
                )
                raise
            return None


class Transport(kombu_redis.Transport):
    Channel = Channel


KOMBU_REDIS = "kombu.transport.redis:Transport"


def register() -> None:
    """Make `redis://` (and `rediss://`, `redis+socket://`) URLs use this transport in
    this process. Naming it in `broker_transport` instead would put its module path into
    the broker URL that Celery's tools read back (Flower's broker tab then answers
    "'redis' broker is not supported")."""
    for alias, target in list(TRANSPORT_ALIASES.items()):
        if target == KOMBU_REDIS:
            TRANSPORT_ALIASES[alias] = f"{__name__}:Transport"
            _transport_cache.pop(alias, None)


def drop_stale_bindings(client: Any, queues: tuple[str, ...]) -> int:
    """Remove bindings that an older ledgerpush declared (every queue bound to the
    invoices exchange under its routing key): kombu keeps bindings in Redis sets, and a
    publish to that exchange would still reach every queue. Returns how many went."""
    removed = 0
    for exchange in queues:
        key = Channel.keyprefix_queue % (exchange,)
        wanted = Channel.sep.join([exchange, "", exchange]).encode()
        stale = [m for m in client.smembers(key) if bytes(m) != wanted]
        if stale:
            removed += int(client.srem(key, *stale))
    if removed:
        log.info("removed %d stale queue binding(s) left by an older version", removed)
    return removed
