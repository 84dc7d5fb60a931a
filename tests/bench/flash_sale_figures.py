"""The flash sale's figures as rows of bench-results.md (section "flash sale").

CPU and transactions are given GROSS (everything the platform's processes used in the
window) and NET of idle (minus the idle rate measured before the sale times the window), per
accepted order."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from libs.testing.plugin import REPO
from tests.bench.flash_sale_checks import SaleCheck
from tests.bench.flash_sale_load import BurstResult, LoopResult, MallOrder
from tests.bench.flash_sale_meters import Window
from tests.bench.flash_sale_seed import HOT_SKUS, HOT_STOCK, SITES
from tests.bench.pg_stats import STATS_FLUSH_S
from tests.bench.profiling import Profile
from tests.bench.quiescence import Quiescence
from tests.bench.report import Report, latency_summary, percentile

SECTION = "flash sale"


@dataclass(frozen=True)
class SaleSetup:
    orders: Sequence[MallOrder]
    clients: int
    seed: int
    measured: Sequence[str]
    environment: str
    load_average: tuple[float, float, float]
    profiles: Sequence[Profile]


@dataclass(frozen=True)
class SaleFigures:
    setup: SaleSetup
    burst: BurstResult
    check: SaleCheck
    idle: Window
    window: Window
    stats_window: Window
    quiescence: Quiescence
    dead_letters: int
    push_lags: list[float]

    @property
    def accepted(self) -> int:
        return len(self.burst.accepted)

    def per_order(self, value: float) -> str:
        return f"{value / self.accepted:.2f}" if self.accepted else "n/a"

    def write(self, report: Report) -> None:
        self._setup(report)
        self._burst(report)
        self._checks(report)
        self._cpu(report)
        self._xacts(report)

    def _add(self, report: Report, figure: str, value: str) -> None:
        report.add(SECTION, figure, value)

    def _setup(self, report: Report) -> None:
        s = self.setup
        demand: Counter[str] = Counter()
        for order in s.orders:
            demand[order.sku_code] += order.quantity
        self._add(
            report,
            "setup",
            f"6 services as OS processes (measured: {', '.join(sorted(s.measured))}); "
            f"{len(HOT_SKUS)} hot SKUs x {HOT_STOCK} units "
            f"({' + '.join(str(site.hot_units) for site in SITES)} over {len(SITES)} "
            f"locations, stores keep safety stock {SITES[1].safety_stock}); "
            f"{len(s.orders)} orders, {s.clients} clients, seed {s.seed}; machine load "
            "average before the sale " + " ".join(f"{v:.1f}" for v in s.load_average),
        )
        self._add(
            report,
            f"demand per hot SKU (units ordered; supply {HOT_STOCK} each)",
            ", ".join(f"{sku[-2:]}: {demand[sku]}" for sku in HOT_SKUS)
            + f"; total {sum(demand.values())}",
        )
        self._add(report, "service environment (OMNI_* set by the harness)", s.environment)
        if s.profiles:
            self._add(
                report,
                "profiled with py-spy during the burst (inflates the CPU figures)",
                ", ".join(
                    f"{p.path.relative_to(REPO)} ({p.samples} samples, {p.errors} unreadable)"
                    for p in s.profiles
                ),
            )

    def _burst(self, report: Report) -> None:
        b = self.burst
        self._add(
            report,
            f"HTTP sale: accepted orders/s (2xx; {len(self.setup.orders)} signed web-mall "
            f"orders, {self.setup.clients} concurrent, no retries)",
            f"{self.accepted / b.seconds:.1f} orders/s ({self.accepted} accepted in "
            f"{b.seconds:.1f} s)",
        )
        self._add(
            report,
            "HTTP status histogram",
            ", ".join(f"{k}: {v}" for k, v in sorted(b.statuses.items())),
        )
        self._add(report, "HTTP latency, every answer", latency_summary(b.latencies))
        if b.accepted_latencies:
            self._add(report, "HTTP latency, 2xx answers", latency_summary(b.accepted_latencies))

    def _checks(self, report: Report) -> None:
        c = self.check
        self._add(
            report,
            "sale orders at the order service, by status",
            ", ".join(f"{k}: {v}" for k, v in sorted(c.statuses.items())),
        )
        self._add(
            report,
            "units held by orders per hot SKU",
            ", ".join(f"{sku[-2:]}: {c.held_units[sku]}" for sku in HOT_SKUS),
        )
        self._add(
            report,
            "oversold (stock levels with reserved > on hand - safety or on hand < 0; "
            f"SKUs whose holding orders exceed {HOT_STOCK})",
            "0" if not c.breaches else f"{c.oversold}: {'; '.join(c.breaches[:5])}",
        )
        self._add(report, "accepted (2xx) orders missing at the order service", str(len(c.missing)))
        mismatches = c.reservation_mismatches()
        self._add(
            report,
            "inventory reserved = units held by orders, per hot SKU",
            "yes"
            if not mismatches
            else "no: "
            + ", ".join(f"{s}: {r} reserved vs {h} held" for s, (r, h) in mismatches.items()),
        )
        self._add(report, "events dead-lettered (all DLQ topics)", str(self.dead_letters))
        if self.push_lags:
            self._add(
                report,
                "stock change → channel push acknowledged, sale and drain (coalesced pushes)",
                latency_summary(self.push_lags),
            )

    def _cpu(self, report: Report) -> None:
        cpu = self.window.cpu()
        idle = self.idle.cpu_rates()
        net = {p: cpu[p] - idle[p] * self.window.seconds for p in cpu}
        self._add(
            report,
            "measured window (first order → quiescent)",
            f"{self.window.seconds:.1f} s (burst {self.burst.seconds:.1f} s, then drain; "
            f"{self.quiescence.note})",
        )
        self._add(
            report,
            f"idle CPU of the platform ({self.idle.seconds:.0f} s before the sale)",
            f"{sum(idle.values()) * 1000:.0f} CPU-ms/s ("
            + ", ".join(f"{p} {r * 1000:.0f}" for p, r in idle.items())
            + ")",
        )
        self._add(
            report,
            "CPU-ms per accepted order, all processes, GROSS (idle included)",
            f"{self.per_order(sum(cpu.values()) * 1000)} ({sum(cpu.values()):.2f} CPU-s)",
        )
        self._add(
            report,
            "CPU-ms per accepted order, all processes, NET of idle",
            f"{self.per_order(sum(net.values()) * 1000)} ({sum(net.values()):.2f} CPU-s)",
        )
        self._add(
            report,
            "CPU-ms per accepted order per process, gross / net of idle",
            ", ".join(
                f"{p} {self.per_order(cpu[p] * 1000)} / {self.per_order(net[p] * 1000)}"
                for p in cpu
            ),
        )

    def _xacts(self, report: Report) -> None:
        xacts = self.stats_window.xacts()
        idle = self.idle.xact_rates()
        net = {s: xacts[s] - idle[s] * self.stats_window.seconds for s in xacts}
        self._add(
            report,
            "transactions per accepted order per service database, gross / net of idle "
            f"(pg_stat_database, first order → {STATS_FLUSH_S:.0f} s after quiescent, "
            "harness probes excluded; net dips below 0 for a service that only polls, whose "
            "pollers run less often on a saturated machine)",
            ", ".join(f"{s} {self.per_order(xacts[s])} / {self.per_order(net[s])}" for s in xacts)
            + f"; all {self.per_order(sum(xacts.values()))} / {self.per_order(sum(net.values()))}",
        )


@dataclass(frozen=True)
class CaptureFigures:
    clients: int
    saturated: LoopResult
    half_load: LoopResult
    offered: float
    health: LoopResult

    def write(self, report: Report) -> None:
        sat, half = self.saturated, self.half_load
        report.add(
            SECTION,
            f"gRPC CaptureOrder → allocated, saturating rate (closed loop, {self.clients} "
            f"clients, {sat.seconds:.0f} s)",
            f"{sat.rate:.1f} orders/s; {_outcome(sat)}; " + latency_summary(sat.latencies),
        )
        ms = [s * 1000 for s in half.latencies]
        report.add(
            SECTION,
            f"gRPC CaptureOrder at half the saturating rate (open loop, {self.offered:.1f}/s "
            "offered; latency from each call's scheduled start)",
            f"{half.rate:.1f} orders/s; p50 {percentile(ms, 50):.1f} ms, "
            f"p99 {percentile(ms, 99):.1f} ms; {_outcome(half)}",
        )
        report.add(
            SECTION,
            f"empty gRPC calls/s (grpc.health.v1 Check, order service, {self.clients} clients)",
            f"{self.health.rate:.0f}"
            + (f"; errors {dict(self.health.errors)}" if self.health.errors else ""),
        )
        ratio = self.health.rate / sat.rate if sat.rate else float("nan")
        report.add(SECTION, "ratio: empty calls/s ÷ saturating orders/s", f"{ratio:.1f}x")


def _outcome(result: LoopResult) -> str:
    errors = ", ".join(f"{k}: {v}" for k, v in sorted(result.errors.items())) or "none"
    return f"allocated {result.allocated}/{result.completed}, errors {errors}"
