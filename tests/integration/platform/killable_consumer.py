"""A consumer as its own OS process, for the test that SIGKILLs one mid-batch: it applies
SkuCreatedEvents in bulk (tests/integration/platform/conftest.apply_in_bulk) and, once it
has committed at least ``commit_first`` events, writes ``marker`` and hangs inside the next
batch's transaction — with that batch's inbox rows and effects written, not committed.

``python -m tests.integration.platform.killable_consumer <database url> <bootstrap> <topic>
<dead-letter topic> <group> <commit_first> <marker>``
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from omni.catalog.v1 import events_pb2
from sqlalchemy.engine import make_url

from libs.consumer import Bulk, Delivery, InboxConsumer
from libs.db import Database
from libs.messaging import make_producer, start_with_retry
from libs.pg import Pg, PgTransaction
from libs.unit_of_work import UnitOfWorkFactory
from tests.integration.platform.conftest import apply_in_bulk


async def main(
    url: str, bootstrap: str, topic: str, dlq: str, group: str, commit_first: int, marker: Path
) -> None:
    db = Database(make_url(url), pool_size=2, max_overflow=0)
    pg = Pg(db.url, producer="order", topic=topic)
    producer = make_producer(bootstrap)
    await start_with_retry(producer)
    committed = 0

    async def apply(
        tx: PgTransaction, deliveries: Sequence[Delivery[events_pb2.SkuCreatedEvent]]
    ) -> None:
        nonlocal committed
        await apply_in_bulk(tx, deliveries)
        if committed >= commit_first:
            await asyncio.to_thread(marker.write_text, str(committed))
            await asyncio.Event().wait()  # killed here, mid-batch
        tx.after_commit(lambda: _count(len(deliveries)))

    def _count(applied: int) -> None:
        nonlocal committed
        committed += applied

    consumer = InboxConsumer(
        service="lib-test",
        group_id=group,
        topics=[topic],
        subscriptions={events_pb2.SkuCreatedEvent: Bulk(apply)},
        uow_factory=UnitOfWorkFactory(db, "order", topic),
        pg=pg,
        bootstrap=bootstrap,
        dead_letter_topic=dlq,
        dead_letter_producer=producer,
        max_batch=25,
    )
    await consumer.start()
    await consumer.run()


if __name__ == "__main__":
    url, bootstrap, topic, dlq, group, first, marker = sys.argv[1:8]
    asyncio.run(main(url, bootstrap, topic, dlq, group, int(first), Path(marker)))
