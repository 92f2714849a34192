"""`ledgerpush enqueue`: reads jobs from a JSON document or JSONL (a file or stdin),
validates each and enqueues the valid ones, and says where to resume after a stop."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import Progress

from worker import safejson
from worker.cli.common import err
from worker.jobs import FieldError, JobValidationError, parse_job


class _BadInput(Exception):
    """The input as a whole cannot be read (no file, not JSON): nothing is enqueued."""


class _Stopped(Exception):
    """Enqueueing stopped before the end of the input (broker unreachable, Ctrl-C)."""

    def __init__(self, reason: str, exit_code: int, done: int, bad: int, resume: int) -> None:
        super().__init__(reason)
        self.reason, self.exit_code = reason, exit_code
        self.done, self.bad, self.resume = done, bad, resume


#: A whole file or stdin read as one JSON document (an array of jobs) may be this large.
_MAX_DOCUMENT_BYTES = 1 << 30
_BROKER_UNREACHABLE = 3
_INTERRUPTED = 130


def json_error(exc: json.JSONDecodeError) -> str:
    return f"line {exc.lineno}, column {exc.colno}: {exc.msg}"


def _one_document(text: str) -> bool:
    """True for one (possibly pretty-printed) JSON object, False for JSONL: the first
    object ends before the text does, or it is broken and another line opens an object."""
    try:
        safejson.parse(text, _MAX_DOCUMENT_BYTES)
    except json.JSONDecodeError as exc:
        return exc.msg != "Extra data" and "\n{" not in text
    except safejson.UnsafeJSON:
        return "\n{" not in text
    return True


# (number, where, item): the item is a JSONL line's text or an array item already read
# (it may hold values the loader refused; they are reported per item).
_Entry = tuple[int, str, Any]


def _read_jobs(source: str) -> list[_Entry]:
    """One entry per job: "line N" for JSONL, "item N" for a JSON array, "job" for a
    single JSON object. Raises _BadInput when the whole input is unreadable."""
    name = "stdin" if source == "-" else source
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise _BadInput(f"cannot read {name}: {exc}") from None
    stripped = text.strip()
    if stripped.startswith("[") or (stripped.startswith("{") and _one_document(stripped)):
        try:
            data = safejson.parse(stripped, _MAX_DOCUMENT_BYTES)
        except json.JSONDecodeError as exc:
            what = "a JSON array" if stripped.startswith("[") else "a JSON object"
            raise _BadInput(
                f"{name} is not valid JSON ({what} was expected): {json_error(exc)}; "
                "nothing was enqueued"
            ) from None
        except safejson.UnsafeJSON as exc:
            raise _BadInput(f"{name}: {exc.problems[0].message}; nothing was enqueued") from None
        if isinstance(data, list):
            return [(n, f"item {n}", item) for n, item in enumerate(data, start=1)]
        return [(1, "job", data)]
    return [
        (n, f"line {n}", line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()
    ]


def _parse_entry(item: Any) -> Any:
    """The job, or JobValidationError naming the fields (also for values the loader
    refused in an array item)."""
    if not isinstance(item, str):
        refused = safejson.problems(item)
        if refused:
            raise JobValidationError(
                [FieldError(field=p.field, message=p.message) for p in refused]
            )
    return parse_job(item)


def _report_invalid(where: str, exc: Exception) -> None:
    for error in getattr(exc, "errors", []):
        if error.field == "(body)":
            err.print(f"[red]{where}: {escape(error.message)}[/red]")
        else:
            err.print(f"[red]{where}: {escape(error.field)}: {escape(error.message)}[/red]")


def _broker_address() -> str:
    """Where Redis was expected, without credentials."""
    from urllib.parse import urlsplit

    from worker.transport.redis_client import redis_url

    try:
        parts = urlsplit(redis_url())
    except Exception:
        return "Redis"
    return f"Redis at {parts.hostname}:{parts.port or 6379}" if parts.hostname else "Redis"


def _enqueue_all(entries: list[_Entry], progress: Progress) -> tuple[int, int]:
    """(enqueued, bad); raises _Stopped naming the entry to resume from."""
    from kombu.exceptions import OperationalError as BrokerError
    from redis.exceptions import RedisError

    from worker.transport.producer import enqueue as enqueue_job

    task = progress.add_task("enqueueing", total=len(entries))
    done = bad = 0
    current = entries[0][0] if entries else 0
    try:
        for number, where, item in entries:
            current = number
            try:
                job_id = enqueue_job(_parse_entry(item))
            except JobValidationError as exc:  # the contract, or a limit of the tenant's system
                bad += 1
                _report_invalid(where, exc)
            except (RedisError, BrokerError, OSError) as exc:
                detail = " ".join(str(exc).split())[:200] or type(exc).__name__
                reason = f"{_broker_address()} is unreachable ({detail})"
                raise _Stopped(reason, _BROKER_UNREACHABLE, done, bad, current) from None
            else:
                # Counted before it is printed: an interrupt in between resumes after it.
                done, current = done + 1, number + 1
                print(job_id, flush=True)
            progress.advance(task)
    except KeyboardInterrupt:
        raise _Stopped("interrupted", _INTERRUPTED, done, bad, current) from None
    return done, bad


def enqueue(
    source: Annotated[
        str, typer.Argument(help="A JSON job, a JSON array or JSONL file; - for stdin.")
    ],
    from_line: Annotated[
        int,
        typer.Option(
            "--from-line",
            min=1,
            help="Start at this line of JSONL input (or item of a JSON array): resume "
            "where an interrupted run stopped.",
        ),
    ] = 1,
) -> None:
    """Validate and enqueue jobs; bad lines are reported by number and skipped."""
    try:
        entries = [e for e in _read_jobs(source) if e[0] >= from_line]
    except _BadInput as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(1) from None
    try:
        with Progress(console=err, transient=True, disable=len(entries) < 20) as progress:
            done, bad = _enqueue_all(entries, progress)
    except _Stopped as stop:
        unit = "item" if entries[0][1].startswith("item") else "line"
        invalid = f" ({stop.bad} invalid)" if stop.bad else ""
        rerun = f"ledgerpush enqueue {source} --from-line {stop.resume}"
        err.print(
            f"[red]stopped: {escape(stop.reason)}; enqueued {stop.done} of {len(entries)}"
            f"{invalid}; {unit} {stop.resume} and after were not enqueued; "
            f"resume with: {escape(rerun)}[/red]",
            soft_wrap=True,
        )
        raise typer.Exit(stop.exit_code) from None
    err.print(f"enqueued {done} of {len(entries)}")
    if bad:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(enqueue)
