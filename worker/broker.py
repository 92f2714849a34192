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
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from kombu.transport import redis as kombu_redis

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


class Transport(kombu_redis.Transport):
    Channel = Channel
