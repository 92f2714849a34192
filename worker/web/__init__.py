"""The operator web app: dashboard pages, the JSON API for producers, /metrics, /health.

`worker.web.app.create_app()` builds it; `ledgerpush web` serves it with uvicorn. All
state it shows comes from the ledger and Redis, so any number of web processes can run
beside any number of workers.

Flower works beside it: with `LEDGERPUSH_TASK_EVENTS=true` the Celery app sends task
events (off by default: they cost worker CPU on every job), so `celery -A worker.transport.app
flower` (pip install flower) shows workers and tasks live. The dashboard is the place for jobs and tenants;
Flower for Celery internals.
"""
