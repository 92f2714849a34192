"""Stopping is clean: a signal to `ledgerpush demo` or `ledgerpush chaos` stops every
process it started (workers, web, its Redis), also when the command itself is killed
with SIGKILL (the children's parent-death signal, worker/transport/children.py). Counted with
psutil on the real process tree."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.conftest import ROOT, wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERPUSH_")}
    return {**env, "LEDGERPUSH_DEMO_HOME": str(home / "demo"), "LEDGERPUSH_HOME": str(home)}


@pytest.fixture
def command(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def _start(
    started: list[subprocess.Popen[bytes]], tmp_path: Path, *args: str
) -> subprocess.Popen[bytes]:
    log = open(tmp_path / "command.log", "wb")  # noqa: SIM115 - closed with the test's tmp dir
    process = subprocess.Popen(
        [sys.executable, "-m", "worker", *args],
        cwd=tmp_path, env=_env(tmp_path), stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    started.append(process)
    return process


def _children_once_up(process: subprocess.Popen[bytes], names: set[str]) -> list[psutil.Process]:
    """The command's descendants once it runs one of each kind in `names`."""

    def up() -> list[psutil.Process] | None:
        assert process.poll() is None, "the command ended before it was signalled"
        children = psutil.Process(process.pid).children(recursive=True)
        return children if names <= {_kind(c) for c in children} else None

    return list(wait_for(up, 240, interval=0.5))


def _kind(child: psutil.Process) -> str:
    try:
        cmdline = child.cmdline()
    except psutil.Error:
        return "gone"
    if cmdline and "redis-server" in cmdline[0]:
        return "redis"
    for kind in ("worker", "web"):
        if kind in cmdline[3:4]:
            return kind
    return "other"


def _all_gone(children: list[psutil.Process], timeout: float = 90) -> None:
    _, alive = psutil.wait_procs(children, timeout=timeout)
    assert not alive, [(p.pid, _kind(p)) for p in alive]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_demo_stops_every_process_it_started(
    command: list[subprocess.Popen[bytes]], tmp_path: Path, signum: int
) -> None:
    demo = _start(command, tmp_path, "demo")
    children = _children_once_up(demo, {"redis", "worker", "web"})

    demo.send_signal(signum)

    demo.wait(90)
    _all_gone(children)


def test_killing_the_demo_outright_still_stops_its_processes(
    command: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    demo = _start(command, tmp_path, "demo")
    children = _children_once_up(demo, {"redis", "worker", "web"})

    demo.kill()
    demo.wait()

    _all_gone(children)


def test_a_signal_to_chaos_stops_its_workers_and_redis(
    command: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    chaos = _start(command, tmp_path, "chaos", "--jobs", "300", "--kills", "1")
    children = _children_once_up(chaos, {"redis", "worker"})

    chaos.send_signal(signal.SIGTERM)

    chaos.wait(120)
    _all_gone(children)


def _start_bench(
    started: list[subprocess.Popen[bytes]], tmp_path: Path, *args: str
) -> subprocess.Popen[bytes]:
    log = open(tmp_path / "bench.log", "wb")  # noqa: SIM115 - closed with the test's tmp dir
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "ratelimit.py"), *args],
        cwd=ROOT, env={**_env(tmp_path), "TMPDIR": str(tmp_path)},
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    started.append(process)
    return process


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_stopping_a_benchmark_stops_its_stack(
    command: list[subprocess.Popen[bytes]], tmp_path: Path, how: str
) -> None:
    """The benchmark's stack runs in a child of its own (bench/_stack.py `isolated`):
    Redis, the simulators' process and the workers are its grandchildren."""
    bench = _start_bench(command, tmp_path, "--seconds", "600", "--workers", "1")
    children = _children_once_up(bench, {"redis", "worker"})

    if how == "sigterm":
        bench.send_signal(signal.SIGTERM)
        bench.wait(120)
    else:
        bench.kill()
        bench.wait()

    _all_gone(children)
