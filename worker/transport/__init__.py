"""Transport: how jobs travel between producers and workers, and the Redis around them.

The Celery app and broker options (`app`, `broker`), sending tasks by name (`dispatch`),
the producer and the plain ingest list (`producer`, `ingest`, `consumer`), the outbox
that re-sends a job whose message was lost (`outbox`), per-tenant fair share
(`fairness`), malformed-message quarantine (`poison`), the Redis client and the bundled
server (`redis_client`, `embedded_redis`, `children`), job leases (`lease`), shared rate
limits (`ratelimit`) and graceful hand-back on shutdown (`shutdown`).
"""
