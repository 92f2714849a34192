"""The child processes of a local stack (localstack.py): `ledgerpush` commands (or any
other) started, stopped, killed and restarted, their CPU time and peak memory read from /proc, and a
function run in a fresh process of its own.

Every child gets SIGTERM when this process dies (worker/transport/children.py).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any, Self

from worker.transport.children import arm_in_child, die_with_parent

#: What a Celery worker logs once it consumes.
WORKER_READY = b" ready."


def from_main_thread() -> bool:
    """Whether a child started now can get the parent-death signal: Linux sends it when
    the thread that started the child ends, and only the main thread lasts as long as
    this process (a worker started from a short-lived thread would die with it)."""
    return threading.current_thread() is threading.main_thread()


def ledgerpush(*args: str) -> list[str]:
    """The command line of `ledgerpush <args>` run by this interpreter."""
    return [sys.executable, "-m", "worker", *args]


def worker_args(hostname: str, concurrency: int) -> list[str]:
    """`ledgerpush worker` as node `<hostname>@host` with `concurrency` threads."""
    return [
        "worker", f"--concurrency={concurrency}", f"--hostname={hostname}@%h", "--loglevel=INFO"
    ]  # fmt: skip


class ChildProcess:
    """`command` (e.g. `ledgerpush(...)`) in a child process whose output goes to
    `log_path`; `ready` is what its log shows once it is up (WORKER_READY for a worker)."""

    def __init__(
        self,
        name: str,
        command: list[str],
        env: dict[str, str],
        log_path: Path,
        *,
        ready: bytes | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.command = command
        self.env = env
        self.log_path = log_path
        self.ready = ready
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._offset = 0  # where this run's output begins in the log

    def start(self, wait: bool = True, timeout: float = 90) -> Self:
        """Start it; with `ready` set and `wait`, return once its log shows it."""
        self._close_log()
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed when the process ends
        self._offset = self._log.tell()
        self.process = subprocess.Popen(
            self.command,
            cwd=self.cwd,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent() if from_main_thread() else None,
        )
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 90) -> None:
        """Until this run's log shows `ready` (at once if there is no `ready`)."""
        if self.process is not None and self.ready is not None:
            wait_for_ready(self.process, self.log_path, timeout, self.ready, self._offset)

    @property
    def pid(self) -> int:
        return self.process.pid if self.process is not None else 0

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def poll(self) -> int | None:
        """The exit code, or None while it runs (or before it started)."""
        return self.process.poll() if self.process is not None else None

    def terminate(self) -> None:
        """SIGTERM, without waiting: a worker finishes the write in flight, hands its
        jobs back and exits."""
        if self.alive:
            assert self.process is not None
            self.process.terminate()

    def join(self, timeout: float = 30) -> None:
        """Wait for it to exit; SIGKILL after `timeout`."""
        if self.process is not None:
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_log()

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM, then SIGKILL if it still runs after `timeout`."""
        self.terminate()
        self.join(timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would."""
        if self.alive:
            assert self.process is not None
            self.process.kill()
            self.process.wait()
        self._close_log()

    def restart(self, wait: bool = True, timeout: float = 30) -> Self:
        self.stop(timeout)
        return self.start(wait)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the process and its descendants."""
        total = 0.0
        for pid in tree_pids(self.pid):
            with contextlib.suppress(OSError):
                total += cpu_seconds(pid)
        return total

    def peak_rss_mib(self) -> float:
        return peak_rss_mib(self.pid)

    def rss_mib(self) -> float:
        return rss_mib(self.pid)

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def wait_for_ready(
    process: subprocess.Popen[bytes],
    log: Path,
    timeout: float = 90,
    ready: bytes = WORKER_READY,
    offset: int = 0,
) -> None:
    """Until `log` shows `ready` past `offset`; RuntimeError with the log's tail if the
    process exits first, naming the log if it takes longer than `timeout` (generous: on a
    busy machine a process takes a while to import and start)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(
                f"the process logging to {log} exited ({process.returncode}): {tail}"
            )
        with contextlib.suppress(OSError):
            if ready in log.read_bytes()[offset:]:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the process logging to {log} is not ready after {timeout:.0f} s")


# ---------------------------------------------------------------- /proc meters


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its reaped children, from /proc."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    # fields[11..14] = utime, stime, cutime, cstime (fields 14-17 of proc(5))
    return sum(int(x) for x in fields[11:15]) / ticks


def peak_rss_mib(pid: int) -> float:
    """VmHWM: the highest resident set size the process reached."""
    return _status_mib(pid, "VmHWM")


def rss_mib(pid: int) -> float:
    """VmRSS: the process's resident set size now."""
    return _status_mib(pid, "VmRSS")


def _status_mib(pid: int, name: str) -> float:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(f"{name}:"):
                return int(line.split()[1]) / 1024
    return 0.0


def tree_pids(pid: int) -> list[int]:
    """The process and all its descendants (a prefork pool's children)."""
    import psutil

    try:
        parent = psutil.Process(pid)
        return [pid] + [child.pid for child in parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


class CpuMeter:
    """CPU seconds of a set of process trees between `start()` and `stop()`."""

    def __init__(self, pids: Callable[[], Iterable[int]]) -> None:
        self.pids = pids
        self.before: dict[int, float] = {}
        self.after: dict[int, float] = {}

    def _read(self) -> dict[int, float]:
        found: dict[int, float] = {}
        for root in self.pids():
            for pid in tree_pids(root):
                with contextlib.suppress(OSError):
                    found[pid] = cpu_seconds(pid)
        return found

    def start(self) -> None:
        self.before = self._read()

    def stop(self) -> float:
        self.after = self._read()
        return sum(v - self.before.get(pid, 0.0) for pid, v in self.after.items())


# ---------------------------------------------------------------- a fresh process


def _isolated_main(conn: Any, parent: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    arm_in_child(parent)
    try:
        conn.send(("ok", fn(*args)))
    except BaseException as exc:
        import traceback

        conn.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))


def isolated(fn: Callable[..., Any], *args: Any) -> Any:
    """`fn(*args)` in a fresh (spawned) process: settings, engine and Redis client are
    cached per process, so a stack that owns its process needs one of its own."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_isolated_main, args=(child, os.getpid(), fn, args))
    process.start()
    status, value = parent.recv()
    process.join()
    if status != "ok":
        raise RuntimeError(value)
    return value
