"""Celery's consumer, with every message it cannot take moved to the poison list.

The broker transport (worker/transport/broker.py) already keeps out what no task could run. This
is the second line: whatever Celery itself still refuses or trips over while taking a
message (an unknown message type or task, a body it cannot decode, a header it cannot
read) goes to `ledgerpush.poison` with one log line, instead of being dropped with a
traceback or stopping the worker.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from celery.worker.consumer import Consumer as CeleryConsumer

from worker.transport import poison

log = logging.getLogger("ledgerpush.consumer")


class Consumer(CeleryConsumer):  # type: ignore[misc]
    def create_task_handler(self, *args: Any, **kwargs: Any) -> Any:
        handle = super().create_task_handler(*args, **kwargs)
        connection_errors = tuple(self.connection_errors or ())

        def on_task_received(message: Any) -> Any:
            try:
                return handle(message)
            except connection_errors:
                raise
            except Exception as exc:
                self._poison(message, "rejected_by_celery", f"{type(exc).__name__}: {exc}")
                return None

        return on_task_received

    def on_unknown_message(self, body: Any, message: Any) -> None:
        self._poison(message, "wrong_envelope", "Celery found no task in it")

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        self._poison(message, "unknown_task", f"no task named {exc}")

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        self._poison(message, "rejected_by_celery", f"{type(exc).__name__}: {exc}")

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        self._poison(message, "undecodable_body", f"{type(exc).__name__}: {exc}")

    def _poison(self, message: Any, reason: str, detail: str) -> None:
        """Keep the message in the poison list, then take it off the broker. Should Redis
        fail in between, the message stays unacknowledged and comes back."""
        raw = json.dumps(getattr(message, "_raw", None) or {}).encode()
        info = getattr(message, "delivery_info", None) or {}
        queue = str(info.get("routing_key") or "unknown")
        with message.channel.conn_or_acquire() as client:
            poison.quarantine(client, queue, raw, poison.PoisonMessage(reason, detail))
        message.reject_log_error(log, self.connection_errors)
