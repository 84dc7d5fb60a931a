"""Every service definition by name (the runner and the tests start services from here)."""

from __future__ import annotations

import importlib

from libs.service_app import ServiceDefinition


def definition(name: str) -> ServiceDefinition:
    module = importlib.import_module(f"services.{name}.app")
    found: ServiceDefinition = module.definition
    return found
