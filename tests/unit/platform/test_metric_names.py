"""Every metric the services register follows the Prometheus naming conventions: an
``omni_`` prefix, counters ending in ``_total``, units in the name (time in seconds), no
``_total`` on anything but a counter, snake_case names and labels."""

from __future__ import annotations

import importlib
import re

import prometheus_client
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

import libs.metrics
from libs.config import SERVICES

NAME = re.compile(r"^omni_[a-z][a-z0-9]*(_[a-z0-9]+)*$")
LABEL = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
# A gauge or histogram must say what it measures: one of these units ends its name.
UNITS = ("_seconds", "_events", "_messages", "_orders", "_bytes", "_ratio", "_units", "_points")
# Words that mean a duration: such a metric is in seconds (or, for consumer lag, messages).
TIME_WORDS = ("duration", "latency", "age", "lag", "delay", "time", "handling", "evaluation")
STANDARD = {prometheus_client.PROCESS_COLLECTOR, prometheus_client.PLATFORM_COLLECTOR}
STANDARD.add(prometheus_client.GC_COLLECTOR)


def omni_metrics() -> list[tuple[str, str, str, tuple[str, ...]]]:
    """(declared name, type, help, label names) of every metric in the default registry
    once libs.metrics and every service's metrics module are imported."""
    assert libs.metrics.RPC_HANDLED is not None
    for service in SERVICES:
        importlib.import_module(f"services.{service}.metrics")
    found = []
    for collector in list(REGISTRY._collector_to_names):  # the registry has no public listing
        if collector in STANDARD:
            continue
        assert isinstance(collector, MetricWrapperBase), collector
        for family in collector.describe():
            name = family.name + ("_total" if family.type == "counter" else "")
            found.append((name, family.type, family.documentation, collector._labelnames))
    return found


def test_the_registry_holds_every_service_metric() -> None:
    names = {name for name, *_ in omni_metrics()}
    for service in SERVICES:
        assert any(n.startswith(f"omni_{service}_") for n in names), service
    assert "omni_grpc_server_handled_total" in names


def test_metric_names_follow_prometheus_conventions() -> None:
    wrong = []
    for name, kind, doc, labels in omni_metrics():
        if not NAME.match(name):
            wrong.append(f"{name}: not omni_ + snake_case")
        if not doc.strip():
            wrong.append(f"{name}: no help text")
        if kind == "counter" and name.endswith("_total_total"):
            wrong.append(f"{name}: _total twice")
        if kind != "counter" and name.endswith("_total"):
            wrong.append(f"{name}: a {kind} named like a counter")
        if kind in {"gauge", "histogram"} and not name.endswith(UNITS):
            wrong.append(f"{name}: a {kind} without a unit ({', '.join(UNITS)})")
        timed = any(w in name.split("_") for w in TIME_WORDS)
        if timed and kind != "counter" and not name.endswith(("_seconds", "_messages")):
            wrong.append(f"{name}: a time measured in something other than seconds")
        if timed and kind == "histogram" and not name.endswith("_seconds"):
            wrong.append(f"{name}: a histogram of time not in seconds")
        if re.search(r"_(ms|millis|milliseconds|minutes|hours|days)(_|$)", name):
            wrong.append(f"{name}: time must be in seconds")
        for label in labels:
            if not LABEL.match(label) or label in {"le", "quantile"}:
                wrong.append(f"{name}: label {label!r}")
    assert not wrong, "\n".join(wrong)
