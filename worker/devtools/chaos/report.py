"""What a chaos run counted, and its table."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table


@dataclass
class Report:
    enqueued: int = 0
    booked: int = 0
    failed: int = 0
    needs_review: int = 0
    lost: int = 0
    duplicates: int = 0
    worker_kills: int = 0
    redis_restarts: int = 0
    faults_injected: int = 0
    seconds: float = 0.0
    kills_after_write: int = 0
    token_expiries: int = 0
    unexpected_exits: int = 0
    db_outages: int = 0
    db_readonly_windows: int = 0
    provider_outages: int = 0
    poison_sent: int = 0
    poison_quarantined: int = 0
    broken_copies_sent: int = 0
    database: str = "sqlite"
    faults: tuple[str, ...] = ()
    problems: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        keys = (
            "enqueued", "booked", "failed", "needs_review", "lost", "duplicates",
            "worker_kills", "redis_restarts", "faults_injected", "seconds", "db_outages",
            "db_readonly_windows", "provider_outages", "poison_sent", "poison_quarantined",
            "broken_copies_sent", "database",
        )  # fmt: skip
        return {**{k: getattr(self, k) for k in keys}, "faults": list(self.faults)}

    @property
    def poison_missing(self) -> int:
        return self.poison_sent - self.poison_quarantined

    def failed_verdict(self) -> bool:
        return bool(self.lost or self.duplicates or self.needs_review or self.poison_missing)


def result_table(report: Report) -> Table:
    table = Table(title=f"ledgerpush chaos: {report.enqueued} jobs in {report.seconds:.0f}s")
    table.add_column("")
    table.add_column("", justify="right")
    rows: Iterator[tuple[str, Any]] = iter(
        (
            ("booked", report.booked),
            ("failed", report.failed),
            ("  of which needs_review", report.needs_review),
            ("lost", report.lost),
            ("duplicates", report.duplicates),
            ("worker kills", report.worker_kills),
            ("  right after a remote write", report.kills_after_write),
            ("Redis restarts", report.redis_restarts),
            ("token expiries", report.token_expiries),
            ("workers that exited on their own", report.unexpected_exits),
            ("faults injected", report.faults_injected),
            ("database", report.database),
            ("database outages", report.db_outages),
            ("database read-only windows", report.db_readonly_windows),
            ("provider outages", report.provider_outages),
            ("poison messages", report.poison_sent),
            ("  in ledgerpush.poison", report.poison_quarantined),
            ("broken copies of valid jobs", report.broken_copies_sent),
        )
    )
    for name, value in rows:
        bad = name in ("lost", "duplicates", "  of which needs_review") and value
        bad = bad or (name == "  in ledgerpush.poison" and report.poison_missing)
        table.add_row(name, f"[red]{value}[/red]" if bad else str(value))
    return table
