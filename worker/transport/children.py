"""Child processes that never outlive the command that started them.

`ledgerpush demo`, `ledgerpush chaos` and the benchmarks start workers, a web app,
Redis and simulators. On SIGTERM, SIGINT or SIGHUP the command raises KeyboardInterrupt
so its `finally` stops them in order; if the command itself is killed (SIGKILL, a
crash), Linux sends each child SIGTERM through the parent-death signal (prctl
PR_SET_PDEATHSIG), set in the child before it runs anything.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

PR_SET_PDEATHSIG = 1
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    prctl: Callable[..., int] = libc.prctl
    return prctl


def die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` for subprocess.Popen: the child gets SIGTERM when this process
    dies. None where the platform has no parent-death signal."""
    prctl = _prctl()  # looked up before the fork: the child only calls it
    if prctl is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
        if os.getppid() != parent:  # the parent died before the signal was armed
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def arm_in_child(parent: int) -> None:
    """For a multiprocessing child, first thing in its target: the same as
    `die_with_parent`, armed from inside."""
    prctl = _prctl()
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def stop_on_signals() -> None:
    """SIGTERM, SIGINT and SIGHUP end the main thread with KeyboardInterrupt, so the
    command's `finally` stops its children. Only the main thread can set handlers."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in STOP_SIGNALS:
        signal.signal(signum, _interrupt)
