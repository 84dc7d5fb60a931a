"""Optional py-spy profiles of service processes (``OMNI_BENCH_PROFILE=1``): one
``py-spy record --format speedscope --rate 200 --pid <pid>`` per service, started and
confirmed attached before the measured burst and stopped with SIGINT (py-spy writes its
file on SIGINT) right after it. Open the files in https://www.speedscope.app.

py-spy pauses the process for each sample, so a profiled run's CPU figures are inflated;
the report says when a run was profiled."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

RATE = 200
ATTACH_TIMEOUT_S = 30
STOP_TIMEOUT_S = 60
_ATTACHED = "Sampling process"
_SUMMARY = re.compile(r"Samples: (\d+) Errors: (\d+)")


@dataclass(frozen=True)
class Profile:
    """A written profile, with py-spy's own count of samples and of samples it failed to
    read (a thread caught mid-change; the rest of the profile is still good)."""

    path: Path
    samples: int
    errors: int

    def __str__(self) -> str:
        return f"{self.path} ({self.samples} samples, {self.errors} errors)"


def enabled() -> bool:
    return os.environ.get("OMNI_BENCH_PROFILE", "") not in ("", "0")


def _py_spy() -> str:
    return str(Path(sys.executable).parent / "py-spy")


class Profilers:
    """One py-spy per named process, writing ``<out_dir>/<name>.json``."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.running: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}

    def output(self, name: str) -> Path:
        return self.out_dir / f"{name}.json"

    def launch(self, pids: dict[str, int]) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name, pid in pids.items():
            self.output(name).unlink(missing_ok=True)
            log = self.out_dir / f"{name}.py-spy.log"
            with open(log, "wb") as sink:
                process = subprocess.Popen(
                    [
                        _py_spy(),
                        "record",
                        "--format",
                        "speedscope",
                        "--rate",
                        str(RATE),
                        "--pid",
                        str(pid),
                        "--output",
                        str(self.output(name)),
                    ],
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                )
            self.running[name] = (process, log)

    async def attached(self) -> None:
        """Wait until every py-spy says it is sampling."""
        await asyncio.gather(*(self._attached(name) for name in self.running))

    async def _attached(self, name: str) -> None:
        process, log = self.running[name]
        deadline = time.monotonic() + ATTACH_TIMEOUT_S
        while _ATTACHED not in log.read_text(errors="replace"):
            if process.poll() is not None:
                raise RuntimeError(f"py-spy for {name} exited: {log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"py-spy did not attach to {name} in {ATTACH_TIMEOUT_S} s")
            await asyncio.sleep(0.1)

    def stop(self) -> list[Profile]:
        """Stop every profiler; returns the profiles written (raises if one is missing)."""
        for process, _ in self.running.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        written = []
        for name, (process, log) in self.running.items():
            process.wait(STOP_TIMEOUT_S)
            path = self.output(name)
            summary = _SUMMARY.search(log.read_text(errors="replace"))
            if not path.exists() or path.stat().st_size == 0 or summary is None:
                raise RuntimeError(f"no profile for {name}: {log.read_text()[-2000:]}")
            written.append(Profile(path, int(summary[1]), int(summary[2])))
            print(f"profile of {name}: {written[-1]}", flush=True)
        self.running.clear()
        return written

    def kill(self) -> None:
        """Clean-up on failure: nothing may outlive the benchmark."""
        for process, _ in self.running.values():
            if process.poll() is None:
                process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)
        self.running.clear()
