"""What every command module of the CLI shares: the consoles (results on stdout, errors
and progress on stderr), logging set-up for the long-running commands, and the actor
the audit trail names for a command-line action."""

from __future__ import annotations

import getpass

from rich.console import Console

from worker.providers import registry
from worker.settings import get_settings

console = Console()
err = Console(stderr=True)


def setup(log_level: str | None = None) -> None:
    """Settings checked, logging and error reporting for a long-running command (worker,
    beat, ingest)."""
    # Imported here: logging and Sentry set-up are not needed for `--help`.
    from worker.logs import setup_logging
    from worker.telemetry import init_sentry

    settings = get_settings()
    registry.check_settings()
    setup_logging(log_level or settings.log_level, settings.log_json)
    init_sentry()


def operator() -> str:
    """Who the audit trail names for a command-line action."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"
