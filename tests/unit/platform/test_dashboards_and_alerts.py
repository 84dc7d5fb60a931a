"""The provisioned dashboards are exactly what deploy/grafana/build_dashboards.py writes, and
every alert rule points at a runbook section that exists."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"


def builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "build_dashboards", DEPLOY / "grafana" / "build_dashboards.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_dashboard_json_is_generated_not_hand_edited() -> None:
    build = builder()
    written = {p.name for p in (DEPLOY / "grafana" / "dashboards").glob("*.json")}
    assert written == {f"{d.uid}.json" for d in build.DASHBOARDS}
    for dashboard in build.DASHBOARDS:
        path = DEPLOY / "grafana" / "dashboards" / f"{dashboard.uid}.json"
        assert json.loads(path.read_text()) == build.dashboard_json(dashboard), (
            f"{path.name} differs from build_dashboards.py: run it"
        )


def test_the_six_dashboards_of_the_platform_exist() -> None:
    titles = {d.title for d in builder().DASHBOARDS}
    assert titles == {
        "Omni / Platform overview",
        "Omni / Orders and routing",
        "Omni / Inventory",
        "Omni / Events and queues",
        "Omni / Gateway and channels",
        "Omni / Members and distribution",
    }


def test_every_alert_has_its_runbook_section() -> None:
    runbook = (DEPLOY / "RUNBOOK.md").read_text()
    sections = {m.lower() for m in re.findall(r"^## (\S+)\s*$", runbook, re.M)}
    for path in (DEPLOY / "prometheus" / "rules").glob("*.yml"):
        text = path.read_text()
        alerts = re.findall(r"^\s*- alert:\s*(\S+)", text, re.M)
        links = re.findall(r"runbook:\s*deploy/RUNBOOK\.md#(\S+)", text)
        assert alerts
        assert sorted(links) == sorted(a.lower() for a in alerts), path.name
        missing = [a for a in alerts if a.lower() not in sections]
        assert not missing, f"no section in deploy/RUNBOOK.md for {missing}"
