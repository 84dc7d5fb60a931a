"""One outbox relay as its own OS process, for the relay benchmark: connects, says
``ready``, waits for a line on stdin, then publishes until the backlog stays empty and
prints how many rows it published.

``python -m tests.bench.relay_process <database url> <bootstrap>``
"""

from __future__ import annotations

import asyncio
import sys

from sqlalchemy.engine import make_url

from libs.db import Database
from libs.messaging import make_producer, start_with_retry
from libs.outbox_relay import OutboxRelay


async def main(url: str, bootstrap: str) -> None:
    db = Database(make_url(url), pool_size=2, max_overflow=0)
    producer = make_producer(bootstrap)
    await start_with_retry(producer)
    relay = OutboxRelay(db, producer, "bench")
    async with db.engine.connect():
        pass
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    published, idle = 0, 0
    while idle < 5:
        count = await relay.run_once()
        published += count
        idle = idle + 1 if count == 0 else 0
        if count == 0:
            await asyncio.sleep(0.05)
    print(published, flush=True)
    await producer.stop()
    await db.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
