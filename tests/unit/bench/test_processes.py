"""CPU accounting from /proc (tests/bench/processes.py) on real processes: a child's CPU is
counted while it runs and, once reaped, through the parent's cutime/cstime — the way an
exited PostgreSQL backend stays in the postmaster's figure."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys

from tests.bench import processes

BURN = "import sys\nx = 0\nfor i in range(3_000_000):\n    x += i\n"


def own_seconds(pid: int) -> float:
    stat = processes.read_stat(pid)
    assert stat is not None
    return (stat.utime + stat.stime + stat.cutime + stat.cstime) / processes.TICKS_PER_SECOND


def children_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def test_reads_its_own_process():
    stat = processes.read_stat(os.getpid())
    assert stat is not None
    assert stat.ppid == os.getppid()
    assert stat.comm


def test_a_process_that_is_gone_reads_as_none():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert processes.read_stat(child.pid) is None


def test_a_reaped_child_stays_in_the_parent_tree():
    before = processes.sample({"me": os.getpid()})["me"]
    reaped_before = children_seconds()
    subprocess.run([sys.executable, "-c", BURN], check=True)
    used = children_seconds() - reaped_before
    after = processes.sample({"me": os.getpid()})["me"]
    assert used > 0
    # The kernel's tick accounting and getrusage's agree to a tick per field.
    assert after - before >= used - 4 / processes.TICKS_PER_SECOND


def test_a_live_child_is_counted_with_its_parent():
    child = subprocess.Popen(
        [sys.executable, "-c", BURN + "print('done', flush=True)\nsys.stdin.read()\n"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == b"done"
        # Our own share first: it only grows, so the difference cannot exceed the child's.
        alone = own_seconds(os.getpid())
        tree = processes.sample({"me": os.getpid()})["me"]
        child_stat = processes.read_stat(child.pid)
        assert child_stat is not None
        burnt = (child_stat.utime + child_stat.stime) / processes.TICKS_PER_SECOND
        assert burnt > 0
        assert tree - alone >= burnt - 1e-9  # float sums of whole ticks
    finally:
        child.kill()
        child.wait()


def test_finds_the_process_listening_on_a_port():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert processes.listening_pid(port) == os.getpid()
