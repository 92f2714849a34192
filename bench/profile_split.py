"""Where a worker's CPU goes: py-spy samples of the worker processes, split by concern.

    .venv/bin/python bench/throughput.py --profile DIR ...   # samples the measured run
    .venv/bin/python bench/profile_split.py DIR/*.txt [--json]

`bench/throughput.py --profile DIR` runs `py-spy record --gil --format raw` on every worker
process for the measured run (only threads holding the GIL are sampled, so waiting on
the network or a lock is not counted) and prints this split of the samples beside its
figures. A stack is put under the first of these that it is in, looked for from the
innermost frame outwards:

- `provider calls`: httpx, httpcore, h11 (what the floor also spends);
- `ledger`: SQLAlchemy, the database drivers, worker/ledger/;
- `redis in the job`: redis-py under the job's task (lease, rate limiter, outbox, circuit,
  reference cache, fair share, the job's last batch);
- `job model`: pydantic and worker/jobs.py; `logging`; `json`;
- `ledgerpush, other`: the rest of the job's own code;

and stacks outside a job's task under `Celery and kombu` (the consumer loop, taking
messages off Redis, the task wrapper: what the lean worker also spends) or `other
threads` (lease renewal, event delivery). py-spy needs to be allowed to read the worker
processes (ptrace: root, or `kernel.yama.ptrace_scope` 0).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

IN_JOB = "run_job (tasks/runner.py"
RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("provider calls", re.compile(r"\((httpx|httpcore|h11)/")),
    ("ledger", re.compile(r"\((sqlalchemy|sqlite3|psycopg|psycopg2)/|worker/ledger/")),
    ("redis in the job", re.compile(r"\(redis/")),
    ("job model", re.compile(r"\(pydantic|worker/jobs\.py")),
    ("logging", re.compile(r"\(logging/|worker/logs\.py")),
    ("json", re.compile(r"\(json/|simplejson/")),
)
OUTSIDE_JOB = ("Celery and kombu", re.compile(r"\((celery|kombu|vine|billiard)/"))


def py_spy() -> str | None:
    """The py-spy binary (beside this Python's, as in the project's .venv, or on PATH), or
    None when it is not installed."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


@contextlib.contextmanager
def recording(directory: Path, pids: Iterable[int], rate: int = 200) -> Iterator[list[Path]]:
    """py-spy on each of `pids` while the block runs; yields the raw output files."""
    binary = py_spy()
    if binary is None:
        raise SystemExit("--profile needs py-spy: pip install py-spy")
    directory.mkdir(parents=True, exist_ok=True)
    spies: list[subprocess.Popen[bytes]] = []
    files: list[Path] = []
    for pid in pids:
        out = directory / f"worker-{pid}.txt"
        files.append(out)
        command = [binary, "record", "--pid", str(pid), "--gil", "--nonblocking"]
        command += ["--rate", str(rate), "--format", "raw", "--output", str(out)]
        spies.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    try:
        yield files
    finally:
        for spy in spies:
            spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        for spy in spies:
            try:
                spy.wait(60)
            except subprocess.TimeoutExpired:
                spy.kill()


def read_stacks(files: Iterable[Path]) -> Counter[str]:
    """py-spy's raw format: one `frame;frame;... count` line per distinct stack."""
    stacks: Counter[str] = Counter()
    for path in files:
        with contextlib.suppress(FileNotFoundError):
            for line in path.read_text().splitlines():
                stack, _, count = line.rpartition(" ")
                if stack and count.isdigit():
                    stacks[stack] += int(count)
    return stacks


def concern(stack: str) -> str:
    frames = stack.split(";")
    if not any(IN_JOB in frame for frame in frames):
        name, pattern = OUTSIDE_JOB
        return name if pattern.search(stack) else "other threads"
    for frame in reversed(frames):
        for name, pattern in RULES:
            if pattern.search(frame):
                return name
    return "ledgerpush, other"


def split(stacks: Counter[str]) -> dict[str, float]:
    """Share of the samples per concern, largest first."""
    total = sum(stacks.values())
    shares: Counter[str] = Counter()
    for stack, count in stacks.items():
        shares[concern(stack)] += count
    return {name: round(count / total, 3) for name, count in shares.most_common()} if total else {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="py-spy raw output files")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    stacks = read_stacks(args.files)
    shares = split(stacks)
    if args.json:
        print(json.dumps({"samples": sum(stacks.values()), "split": shares}, indent=2))
        return 0
    print(f"samples: {sum(stacks.values())}")
    for name, share in shares.items():
        print(f"  {name}: {share:.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
