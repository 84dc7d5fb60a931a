"""The event loop every process of the platform runs on.

uvloop by default: its event loop, written in C over libuv, spends less CPU per gRPC call
and per database round trip than asyncio's own (bench-results.md, "rpc overhead").
OMNI_EVENT_LOOP=asyncio chooses the standard library's loop, e.g. to rule uvloop out while
chasing a bug.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")

# Keyed by the names libs.config.EVENT_LOOPS accepts.
LOOP_FACTORIES: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "uvloop": uvloop.new_event_loop,
    "asyncio": asyncio.new_event_loop,
}


def run(main: Coroutine[Any, Any, T], event_loop: str) -> T:
    """``asyncio.run(main)`` on a new event loop of the named kind."""
    with asyncio.Runner(loop_factory=LOOP_FACTORIES[event_loop]) as runner:
        return runner.run(main)
