"""The operator web app: dashboard pages, the JSON API for producers, /metrics, /health.

`worker.web.app.create_app()` builds it; `ledgerpush web` serves it with uvicorn.
"""
