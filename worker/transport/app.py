"""The Celery app and all of its settings, in one place.

Delivery is at least once (acks late, requeue when a worker dies); the ledger and the
lookup-before-write rule in the pipeline turn that into exactly-once effects.

Acknowledgements and the outbox: what keeps a job alive while the ledger's database or
Redis is away.

- `task_acks_late`: a message is acknowledged when its task ends, not when it arrives;
  `task_reject_on_worker_lost` requeues the message of a worker that died.
- `task_acks_on_failure_or_timeout` stays on: a task that *raises* is acknowledged. So
  no store outage may reach Celery as a failure: `tasks/runner.py` turns it into
  `task.retry` with backoff (worker/store_outage.py says what counts as one). A retry
  publishes a new message (written to the outbox first) and only then is the old one
  acknowledged.
- If the retry cannot be published (Redis is down), Celery would reject the message
  without requeueing, which on Redis is an acknowledgement. The runner instead waits
  for Redis for a while, then rejects *with* requeue: the message goes back to its queue,
  or, while Redis stays away, stays in the unacked hash (persisted with the AOF) until
  the visibility timeout hands it out again (worker/transport/broker.py forgets what it cannot
  acknowledge on a lost connection instead of stopping the worker).
- The outbox entry of a message (worker/transport/outbox.py) is kept from publish until the
  job's ledger row exists (the pipeline's accept step), not merely until a worker
  receives it; receipt only marks it. A received entry is left to kombu for one
  visibility timeout; after that, or once later messages show it was lost on its way,
  the reconciler sends the job again, or drops the entry if the row exists after all.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import (
    beat_init,
    before_task_publish,
    setup_logging,
    task_received,
    worker_init,
    worker_shutting_down,
)
from kombu import Exchange, Queue  # type: ignore[attr-defined]

from worker.logs import setup_logging as configure
from worker.settings import get_settings
from worker.tasknames import (
    BULK_QUEUE as BULK_QUEUE,
)
from worker.tasknames import (
    DELIVER_EVENTS_TASK,
    PURGE_EVENTS_TASK,
    PURGE_TASK,
    RECONCILE_TASK,
    REFRESH_TOKENS_TASK,
    SYNC_PAYMENTS_TASK,
)
from worker.tasknames import (
    INVOICE_TASK as INVOICE_TASK,
)
from worker.tasknames import (
    INVOICES_QUEUE as INVOICES_QUEUE,
)
from worker.tasknames import (
    MAINTENANCE_QUEUE as MAINTENANCE_QUEUE,
)
from worker.tasknames import (
    PAYMENT_TASK as PAYMENT_TASK,
)
from worker.tasknames import (
    PAYMENTS_QUEUE as PAYMENTS_QUEUE,
)
from worker.tasknames import (
    QUEUE_FOR_TASK as QUEUE_FOR_TASK,
)
from worker.tasknames import (
    QUEUES as QUEUES,
)
from worker.tasknames import (
    TASK_FOR_KIND as TASK_FOR_KIND,
)
from worker.telemetry import init_sentry
from worker.transport import broker, outbox, shutdown
from worker.transport.redis_client import get_redis, redis_url


def celery_config() -> dict[str, Any]:
    """Evaluated lazily, on first use, so importing this module starts nothing."""
    settings = get_settings()
    return {
        # `redis://` means kombu's Redis transport, repaired so a worker survives Redis
        # restarting and checked for poison messages (worker/transport/broker.py, registered below).
        "broker_url": redis_url(),
        # Celery's consumer, with whatever it cannot take moved to the poison list.
        "worker_consumer": "worker.transport.consumer:Consumer",
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            # Must exceed the longest task (and any countdown) or a message runs twice.
            "visibility_timeout": settings.visibility_timeout,
            # kombu looks for messages past the visibility timeout only every
            # interval x throttle seconds (100 by default): sweep every 10 s instead, so
            # the message of a worker that died comes back soon after the timeout.
            "unacked_restore_interval": 10,
            "unacked_restore_throttle": 1,
            "socket_timeout": 10,
            "socket_connect_timeout": 5,
        },
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        "worker_pool": "threads",
        "worker_concurrency": settings.worker_concurrency,
        "worker_hijack_root_logger": False,
        # Task events feed Flower and `celery events` (on by default); publishing them
        # costs CPU on every task, which LEDGERPUSH_TASK_EVENTS=false saves.
        "worker_send_task_events": settings.task_events,
        "task_send_sent_event": settings.task_events,
        # ledgerpush sets no Celery rate limits (worker/transport/ratelimit.py limits per tenant).
        "worker_disable_rate_limits": True,
        "task_soft_time_limit": settings.task_soft_time_limit,
        "task_time_limit": settings.task_time_limit,
        "task_default_queue": INVOICES_QUEUE,
        "task_queues": declared_queues(),
        "task_routes": {
            INVOICE_TASK: {"queue": INVOICES_QUEUE},
            PAYMENT_TASK: {"queue": PAYMENTS_QUEUE},
            "ledgerpush.maintenance.*": {"queue": MAINTENANCE_QUEUE},
        },
        "task_default_retry_delay": 5,
        "beat_schedule": {
            **_purge_schedule(settings.purge_after_days),
            "refresh-expiring-tokens": {
                "task": REFRESH_TOKENS_TASK,
                "schedule": 60.0,
            },
            "reconcile-stuck-jobs": {
                "task": RECONCILE_TASK,
                "schedule": 30.0,
            },
            # Event delivery is started when events are written; this catches up after
            # an outage of the broker or Redis, and drops events past their retention.
            "deliver-events": {"task": DELIVER_EVENTS_TASK, "schedule": 15.0},
            "purge-events": {"task": PURGE_EVENTS_TASK, "schedule": 3600.0},
            "sync-payments": {
                "task": SYNC_PAYMENTS_TASK,
                "schedule": settings.payment_sync_seconds,
            },
        },
        "timezone": "UTC",
    }


def _purge_schedule(days: int | None) -> dict[str, Any]:
    """Data retention (worker/ops/purge.py), once a day, only when configured."""
    if not days:
        return {}
    return {"purge-settled-jobs": {"task": PURGE_TASK, "schedule": 86400.0}}


def declared_queues() -> list[Queue]:
    """Each queue with its own direct exchange and routing key, both named after it: a
    message published to an exchange reaches that one queue. (Celery's default binds
    every queue to the default queue's exchange and routing key.)"""
    return [
        Queue(name, Exchange(name, type="direct"), routing_key=name)  # type: ignore[no-untyped-call]
        for name in QUEUES
    ]


broker.register()
app = Celery("ledgerpush", include=["tasks.invoices", "tasks.payments", "tasks.maintenance"])
app.add_defaults(celery_config)
# SIGTERM: running jobs finish the write they are in, then hand back (worker/transport/shutdown.py).
worker_shutting_down.connect(shutdown.request, weak=False)
# Every job message is kept in the outbox from publish until its job is in the ledger: a
# message lost before that is sent again (see "Acknowledgements and the outbox" above).
before_task_publish.connect(outbox.on_before_publish, weak=False)
task_received.connect(outbox.on_task_received, weak=False)


# `celery -A worker.transport.app worker|beat` gets what `ledgerpush worker|beat` sets up: our log
# format with secret scrubbing instead of Celery's, and Sentry.
def _configure_logging(loglevel: str | int | None = None, **_: Any) -> None:
    settings = get_settings()
    configure(loglevel or settings.log_level, settings.log_json)


def _start_sentry(**_: Any) -> None:
    init_sentry()


def _drop_stale_bindings(**_: Any) -> None:
    from redis.exceptions import RedisError

    try:
        broker.drop_stale_bindings(get_redis(), QUEUES)
    except RedisError as exc:  # the next worker start tries again
        import logging

        logging.getLogger("ledgerpush.broker").warning("could not check queue bindings: %s", exc)


setup_logging.connect(_configure_logging, weak=False)
worker_init.connect(_start_sentry, weak=False)
worker_init.connect(_drop_stale_bindings, weak=False)
beat_init.connect(_start_sentry, weak=False)
