"""Structured logging with job context on every line, and secret scrubbing."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterator
from typing import Any

_context: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("log_context", default={})  # noqa: B039

#: Keys whose values are secrets wherever they appear (dicts, Sentry events, payloads).
#: Anchored where a plain substring would also hit harmless keys (postal_code, errorCode,
#: token_expires_at, token_type).
SECRET_KEYS = re.compile(
    r"(access_token|refresh_token|id_token|secret|password|passwd|authorization|api_?key|"
    r"cookie|token$|^code$|^grant$)",
    re.IGNORECASE,
)
_SECRET_NAME = (
    r"(?:[\w-]*(?:token|secret|password|passwd|api_?key)|(?<![\w-])(?:authorization|code))"
)
_PATTERNS = [
    # Schemes first, so "Authorization: Bearer x" loses the token before the key rule runs.
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 [redacted]"),
    (
        # key=value, key: value, "key": "value", 'key': 'value' (also httpx's Headers repr)
        re.compile(rf"(?i)([\"']?{_SECRET_NAME}[\"']?\s*[:=]\s*[\"']?)([^\"'&,;\s}})]+)"),
        r"\1[redacted]",
    ),
]
REDACTED = "[redacted]"
# Every pattern above needs one of these words; text without any is returned as is (most
# log lines), which costs one scan instead of one per pattern.
_MAY_HOLD_SECRET = re.compile(r"(?i)bearer|basic|token|secret|passw|api_?key|authorization|code")
#: Celery's own per-task lines ("Task … received", "Task … succeeded in …"): the pipeline
#: logs one line per job with its outcome, so above DEBUG these are not written.
PER_TASK_LOGGERS = ("celery.worker.strategy", "celery.app.trace")


def scrub_text(text: str) -> str:
    if not _MAY_HOLD_SECRET.search(text):
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def scrub(value: Any, depth: int = 0) -> Any:
    """Redact secrets in nested data: values of secret-named keys, tokens inside text."""
    if depth > 12:
        return value
    if isinstance(value, dict):
        return {
            k: REDACTED
            if isinstance(k, str) and SECRET_KEYS.search(k) and v
            else scrub(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub(v, depth + 1) for v in value]
    if isinstance(value, str):
        return scrub_text(value)
    return value


@contextlib.contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v}})
    try:
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    """Adds job id, tenant and provider to every record and scrubs the message."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            setattr(record, key, value)
        if record.args:
            record.msg = record.getMessage()
            record.args = None
        msg = record.msg if type(record.msg) is str else str(record.msg)
        record.msg = scrub_text(msg)
        return True


class JsonFormatter(logging.Formatter):
    CONTEXT_FIELDS = ("job_id", "tenant", "provider", "kind", "attempt")
    # The access log's (worker/web/access_log.py); its text lines say them already.
    FIELDS = (*CONTEXT_FIELDS, "principal", "method", "path", "status", "duration_ms")

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in self.FIELDS:
            if hasattr(record, name):
                line[name] = getattr(record, name)
        if record.exc_info:
            line["exc"] = scrub_text(self.formatException(record.exc_info))
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        context = " ".join(
            f"{name}={getattr(record, name)}"
            for name in JsonFormatter.CONTEXT_FIELDS
            if hasattr(record, name)
        )
        text = super().format(record)
        text = scrub_text(text)
        return f"{text} [{context}]" if context else text


def setup_logging(level: str | int = "INFO", as_json: bool | None = None) -> None:
    use_json = (not sys.stderr.isatty()) if as_json is None else as_json
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(
        JsonFormatter()
        if use_json
        else TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "alembic", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for name in PER_TASK_LOGGERS:  # still written with --loglevel DEBUG
        logging.getLogger(name).setLevel(
            logging.NOTSET if root.level <= logging.DEBUG else logging.WARNING
        )
