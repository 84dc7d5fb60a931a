"""The channel's own server for outbound pushes (stock, order status): acknowledges every
push and notes when it arrived. It stands for the external channel, so it runs in the
benchmark's process and its CPU is not the platform's."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from libs.local_stack import free_port

STARTUP_TIMEOUT_S = 10


class ChannelEndpoint:
    def __init__(self) -> None:
        self.port = free_port()
        self.arrivals: list[tuple[dict[str, Any], float]] = []
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/push"

    def last_arrival(self) -> float:
        """Wall time of the latest push (0 if none came yet)."""
        return self.arrivals[-1][1] if self.arrivals else 0.0

    def stock_push_lags(self, since: float) -> list[float]:
        """Seconds from each stock change (the push's event time) to its acknowledgement, for
        pushes that arrived after ``since``."""
        return [
            arrived - datetime.fromisoformat(body["event_time"]).timestamp()
            for body, arrived in self.arrivals
            if arrived >= since and body.get("kind") == "stock" and body.get("event_time")
        ]

    async def _push(self, request: Request) -> JSONResponse:
        self.arrivals.append((await request.json(), time.time()))
        return JSONResponse({"ok": True})

    async def start(self) -> None:
        app = Starlette(routes=[Route("/push", self._push, methods=["POST"])])
        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None, access_log=False)
        )
        self._task = asyncio.create_task(self._server.serve())
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self._server.started:
            if self._task.done() or time.monotonic() > deadline:
                raise RuntimeError("channel endpoint did not start")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, timeout=10)
