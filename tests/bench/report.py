"""Collects benchmark figures and writes them to bench-results.md."""

from __future__ import annotations

import platform
import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path


def percentile(samples: list[float], pct: float) -> float:
    """Nearest-rank percentile of ``samples`` (pct in 0..100)."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def latency_summary(seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (
        f"p50 {percentile(ms, 50):.2f} ms, p99 {percentile(ms, 99):.2f} ms, "
        f"mean {statistics.fmean(ms):.2f} ms, n={len(ms)}"
    )


@dataclass
class Report:
    sections: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def add(self, section: str, figure: str, value: str) -> None:
        self.sections.setdefault(section, []).append((figure, value))
        print(f"[{section}] {figure}: {value}", flush=True)

    def write(self, path: Path) -> None:
        """Write the figures; sections this run did not measure keep their earlier figures."""
        sections = {**_read_sections(path), **self.sections}
        lines = [
            "# Benchmark results",
            "",
            f"Written by `make bench` at {datetime.now(UTC).isoformat(timespec='seconds')} on "
            f"{platform.machine()} ({platform.python_implementation()} "
            f"{platform.python_version()}). Shared 2-core machine: compare ratios "
            "and medians, not single absolute figures.",
            "",
        ]
        for section, figures in sections.items():
            lines += [f"## {section}", "", "| figure | value |", "|---|---|"]
            lines += [f"| {name} | {value} |" for name, value in figures]
            lines.append("")
        path.write_text("\n".join(lines))


def _read_sections(path: Path) -> dict[str, list[tuple[str, str]]]:
    if not path.exists():
        return {}
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            current = sections.setdefault(line[3:].strip(), [])
        elif current is not None and line.startswith("| ") and not line.startswith("| figure"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            if len(cells) == 2:
                current.append((cells[0], cells[1]))
    return sections
