"""Container health checks for the ledgerpush image, one per process the image runs.

`ledgerpush-healthcheck [worker [NODE]|beat|web|ingest [HOST]]` exits 0 when that process is
healthy and 1 when it is not, printing one line saying why. Without an argument it checks the
process the container runs (PID 1's `ledgerpush <command>`), so the image's single
HEALTHCHECK fits whichever command a container was started with; any other command
(a simulator, a one-off CLI run) is reported healthy.

- worker: the Celery node of this container (`celery@<hostname>`, or NODE) answers a
  ping through the broker;
- beat: the scheduler's state file was written recently (Celery beat saves it every
  three minutes while it runs);
- web: `GET /health` answers 200 (the ledger and Redis are reachable);
- ingest: a drainer on this container's host (or HOST) has beaten its heartbeat in
  Redis recently.
"""

from __future__ import annotations

import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

BEAT_STALE_SECONDS = 600.0
PING_TIMEOUT_SECONDS = 10.0


def _worker(node: str = "") -> str | None:
    from worker.transport.app import app

    node = node or f"celery@{socket.gethostname()}"
    replies = app.control.ping(destination=[node], timeout=PING_TIMEOUT_SECONDS)
    return None if replies else f"{node} did not answer a ping"


def _beat(*_: str) -> str | None:
    from worker.settings import get_settings

    home = get_settings().home
    states = list(home.glob("beat-schedule*"))
    if not states:
        return f"no beat-schedule in {home}"
    age = time.time() - max(path.stat().st_mtime for path in states)
    if age > BEAT_STALE_SECONDS:
        return f"beat-schedule last written {age:.0f}s ago"
    return None


def _web(*_: str) -> str | None:
    from worker.settings import get_settings

    url = f"http://127.0.0.1:{get_settings().web_port}/health"
    try:
        with urllib.request.urlopen(url, timeout=PING_TIMEOUT_SECONDS) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    except urllib.error.URLError as exc:
        return f"{url}: {type(exc.reason).__name__}"
    except OSError as exc:
        return f"{url}: {type(exc).__name__}"
    return None if status == 200 else f"{url} answered {status}"


def _ingest(host: str = "") -> str | None:
    from worker.transport.ingest import DRAINERS_KEY, HEARTBEAT_TIMEOUT
    from worker.transport.redis_client import get_redis

    host = host or socket.gethostname()
    redis = get_redis()
    seconds, micros = redis.time()
    since = seconds + micros / 1_000_000 - HEARTBEAT_TIMEOUT
    prefix = f"{host}:".encode()
    beating: list[bytes] = redis.zrangebyscore(DRAINERS_KEY, since, "+inf")  # type: ignore[assignment, unused-ignore]
    if any(name.startswith(prefix) for name in beating):
        return None
    return f"no heartbeat of a drainer on {host} in {HEARTBEAT_TIMEOUT:.0f}s"


CHECKS: dict[str, Callable[..., str | None]] = {
    "worker": _worker,
    "beat": _beat,
    "web": _web,
    "ingest": _ingest,
}


def running_command(cmdline: Path = Path("/proc/1/cmdline")) -> str | None:
    """The `ledgerpush` subcommand PID 1 runs, if it runs one."""
    args = [Path(arg).name for arg in cmdline.read_bytes().decode().split("\0") if arg]
    for position, arg in enumerate(args[:-1]):
        if arg == "ledgerpush":
            return args[position + 1]
    return None


def main(argv: list[str]) -> int:
    command = argv[0] if argv else running_command()
    check = CHECKS.get(command or "")
    if check is None:
        if argv:
            print(f"unknown check {command!r}: one of {', '.join(CHECKS)}")
            return 2
        print(f"nothing to check for {command or 'this command'}")
        return 0
    try:
        problem = check(*argv[1:])
    except Exception as exc:  # a health check reports, it does not crash
        problem = f"{command}: {type(exc).__name__}"  # the text could carry a URL's password
    print(problem or f"{command}: healthy")
    return 1 if problem else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
