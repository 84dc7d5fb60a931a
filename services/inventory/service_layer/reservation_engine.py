"""The reservation engine: holds from every caller, applied in batches (group commit).

Reserve and ReserveBatch hand their holds to one engine per process. A libs.batching
Batcher gathers the holds that arrive while the previous batch is being applied, and the
engine applies each batch in ONE transaction on a plain asyncpg connection:

1. request records (Reserve's request_id): a retry gets the first answer;
2. one statement claims the reservation headers by order id, locks the stock rows of
   every (location, sku) the claimed holds might take in the global order, and reads the
   named locations and tracked SKUs; a hold whose order id was taken already is a replay
   (answered with its reservation) or, with other lines, ALREADY_EXISTS;
3. decide the new holds in arrival order (domain.holds.decide_batch, pure: unknown or
   inactive references → INVALID_ARGUMENT, then first fit / all or nothing);
4. one statement writes the levels, the lines, the SALE movements of confirming holds, the
   request answers, one StockChangedEvent per changed level (outbox), and drops the
   headers of refused holds; commit.

So a batch is BEGIN, two statements and COMMIT, whatever its size (plus one for request
records, and one more only when a hold is a replay). The hot rows stay locked from step 2
to the commit only: the decision in between is Python without I/O. A hold is all or
nothing; a refused hold leaves nothing behind (its
order id can be held later). An order id (or request id) met twice in one batch waits for
the next batch, where it meets the first one's committed result. A database error that a
hold's own data could cause splits the batch until the faulty hold fails alone; a lost
connection fails the batch's callers, whose retries are idempotent by order id.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
from omni.inventory.v1 import events_pb2
from opentelemetry import context as otel_context
from opentelemetry import trace

from libs.batching import Batcher
from libs.db import is_database_unavailable, is_retryable_conflict
from libs.errors import (
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    Unavailable,
)
from libs.pg import Pg, PgTransaction
from services.inventory import metrics
from services.inventory.adapters import hold_repository as repo
from services.inventory.adapters.proto import level_to_proto
from services.inventory.domain.holds import (
    BatchPlan,
    Decision,
    Hold,
    Key,
    Skipped,
    decide_batch,
    same_hold,
    validate_hold,
)
from services.inventory.domain.locations import Location
from services.inventory.domain.reservations import (
    Reservation,
    ReservationLine,
    ReservationStatus,
    effective_ttl,
)
from services.inventory.domain.stock import MovementKind, StockLevel

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

# A deadlock or serialization failure should not happen (one lock order everywhere); if one
# does, the batch is simply tried again before its callers hear of it.
CONFLICT_ATTEMPTS = 3


@dataclass(frozen=True)
class RequestRecord:
    """Reserve's idempotency record: the request id, a digest of the request, and how the
    answer is stored, so a retry with the same id is answered from the record."""

    method: str
    request_id: str
    fingerprint: bytes
    encode: Callable[[Reservation], bytes]

    @property
    def key(self) -> repo.RequestId:
        return (self.method, self.request_id)


@dataclass(frozen=True)
class HoldOutcome:
    """One hold's answer: its reservation, or the error that refused it (nothing held)."""

    reservation: Reservation | None = None
    error: DomainError | None = None
    skipped: tuple[Skipped, ...] = ()
    # The order already had this very hold: answered with its reservation.
    repeated: bool = False
    # A Reserve retried under its request id: the first answer, as stored.
    stored_response: bytes | None = None


class _Deferred:
    """A hold whose order id (or request id) already has a hold in the batch."""


DEFERRED = _Deferred()


@dataclass(frozen=True)
class _Ask:
    hold: Hold
    request: RequestRecord | None
    caller: trace.SpanContext


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ReservationEngine:
    """Group commit of holds. ``max_batch`` holds per transaction; ``concurrency`` batches
    in flight at once (each on its own connection); at most ``max_queued`` holds waiting —
    beyond that a caller is told UNAVAILABLE at once (back-pressure: a fast, retryable
    answer instead of a deadline spent in a queue)."""

    def __init__(
        self,
        pg: Pg,
        *,
        max_batch: int = 100,
        concurrency: int = 1,
        max_queued: int = 5_000,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._pg = pg
        self._clock = clock
        self.max_queued = max_queued
        self._batcher: Batcher[_Ask, HoldOutcome | _Deferred] = Batcher(
            self._flush, max_batch=max_batch, concurrency=concurrency, name="reservations"
        )

    @property
    def batches(self) -> int:
        return self._batcher.batches

    @property
    def holds_applied(self) -> int:
        return self._batcher.items

    def admit(self, holds: int) -> None:
        """Raises Unavailable when ``holds`` more would overfill the queue."""
        if self._batcher.queued + holds > self.max_queued:
            metrics.RESERVATIONS.labels("shed").inc(holds)
            raise Unavailable(
                f"inventory is saturated ({self._batcher.queued} holds queued); retry shortly"
            )

    async def hold(self, hold: Hold, request: RequestRecord | None = None) -> HoldOutcome:
        """Hold every line of the order (at the named locations, or whole at the first
        candidate able to take it), or nothing; see the module's docstring. Raises
        Unavailable when saturated (see ``admit``)."""
        try:
            validate_hold(hold)
        except InvalidArgument as error:
            return HoldOutcome(error=error)
        self.admit(1)
        ask = _Ask(hold, request, trace.get_current_span().get_span_context())
        while True:
            outcome = await self._batcher.submit(ask)
            if not isinstance(outcome, _Deferred):
                return outcome

    async def close(self) -> None:
        await self._batcher.close()

    # --- one batch ------------------------------------------------------------------------

    async def _flush(self, asks: Sequence[_Ask]) -> list[HoldOutcome | _Deferred | BaseException]:
        outcomes: list[HoldOutcome | _Deferred | BaseException] = [DEFERRED] * len(asks)
        orders: set[str] = set()
        requests: set[repo.RequestId] = set()
        chosen: list[int] = []
        for i, ask in enumerate(asks):
            if ask.hold.order_id in orders or (ask.request and ask.request.key in requests):
                continue
            orders.add(ask.hold.order_id)
            if ask.request:
                requests.add(ask.request.key)
            chosen.append(i)
        applied = await self._apply_isolating([asks[i] for i in chosen])
        for i, outcome in zip(chosen, applied, strict=True):
            outcomes[i] = outcome
        metrics.RESERVATION_BATCH_HOLDS.observe(len(chosen))
        return outcomes

    async def _apply_isolating(self, asks: Sequence[_Ask]) -> list[HoldOutcome | BaseException]:
        """Apply the batch; on an error one hold's data could cause, apply each half apart
        until the faulty hold fails alone (the others still succeed exactly once: a failed
        transaction left nothing)."""
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            try:
                return await self._apply(asks)
            except asyncpg.PostgresError as error:
                if is_retryable_conflict(error) and attempt < CONFLICT_ATTEMPTS:
                    continue
                if is_database_unavailable(error) or is_retryable_conflict(error):
                    return [error] * len(asks)
                if len(asks) == 1:
                    log.exception("reservation hold failed in the database")
                    return [error]
                middle = len(asks) // 2
                return [
                    *await self._apply_isolating(asks[:middle]),
                    *await self._apply_isolating(asks[middle:]),
                ]
            except Exception as error:  # a cancellation is no Exception: it propagates
                if not is_database_unavailable(error):
                    log.exception("reservation batch failed")
                return [error] * len(asks)
        raise AssertionError("unreachable")

    async def _apply(self, asks: Sequence[_Ask]) -> list[HoldOutcome | BaseException]:
        now = self._clock()
        callers = [a.caller for a in asks if a.caller.is_valid]
        parent = (
            trace.set_span_in_context(trace.NonRecordingSpan(callers[0]))
            if callers
            else otel_context.Context()
        )
        with tracer.start_as_current_span(
            "inventory.reservation_batch",
            context=parent,
            links=[trace.Link(c) for c in callers[1:]],
            attributes={"omni.holds": len(asks)},
        ):
            async with self._pg.transaction() as tx:
                batch = _Batch(tx, asks, now)
                await batch.run()
                await tx.commit()
            return list(batch.outcomes())


class _Batch:
    """The steps of one batch's transaction; ``outcomes`` once it committed."""

    def __init__(self, tx: PgTransaction, asks: Sequence[_Ask], now: datetime) -> None:
        self.tx = tx
        self.conn = tx.conn
        self.asks = asks
        self.now = now
        self.answers: list[HoldOutcome | None] = [None] * len(asks)
        self.claimed_requests: set[repo.RequestId] = set()
        self.new: list[int] = []
        self.plan: BatchPlan | None = None
        self.headers: dict[int, repo.Header] = {}
        self.levels: dict[Key, StockLevel] = {}
        self.locations: dict[str, Location] = {}
        self.tracked: set[str] = set()

    def outcomes(self) -> list[HoldOutcome]:
        assert all(a is not None for a in self.answers)
        return [a for a in self.answers if a is not None]

    def _open(self) -> list[int]:
        return [i for i, answer in enumerate(self.answers) if answer is None]

    async def run(self) -> None:
        self.tx.after_commit(self._count)
        await self._answer_retried_requests()
        await self._claim_and_lock()
        await self._answer_replays()
        self._decide()
        await self._write()

    async def _answer_retried_requests(self) -> None:
        keyed = [(i, r) for i in self._open() if (r := self.asks[i].request) is not None]
        if not keyed:
            return
        self.claimed_requests = await repo.claim_requests(
            self.conn, [(r.key, r.fingerprint) for _, r in keyed]
        )
        seen = [r.key for _, r in keyed if r.key not in self.claimed_requests]
        if not seen:
            return
        stored = await repo.stored_requests(self.conn, seen)
        for i, request in keyed:
            if request.key not in self.claimed_requests:
                self.answers[i] = _from_record(stored.get(request.key), request)

    async def _claim_and_lock(self) -> None:
        open_ = self._open()
        if not open_:
            return
        holds = [self.asks[i].hold for i in open_]
        self.headers = {i: _header(self.asks[i].hold, self.now) for i in open_}
        found = await repo.claim_and_lock(
            self.conn,
            list(self.headers.values()),
            self.now,
            [(hold.order_id, key) for hold in holds for key in sorted(hold.rows())],
            sorted(set().union(*(hold.locations() for hold in holds))),
            sorted(set().union(*(hold.skus() for hold in holds))),
        )
        # From here to the commit the rows are locked: Python without I/O, then one write
        # (a replay's reservation is read first, rarely).
        self.new = [i for i in open_ if self.asks[i].hold.order_id in found.orders]
        self.levels, self.locations, self.tracked = found.levels, found.locations, found.tracked
        self.locations_version = found.locations_version

    async def _answer_replays(self) -> None:
        new = set(self.new)
        held_before = [i for i in self._open() if i not in new]
        if not held_before:
            return
        existing = await repo.reservations(
            self.conn, [self.asks[i].hold.order_id for i in held_before]
        )
        for i in held_before:
            order_id = self.asks[i].hold.order_id
            found = existing.get(order_id)
            if found is None:  # committed headers are never deleted
                raise RuntimeError(f"reservation {order_id} conflicted but is not there")
            self.answers[i] = _replay(found, self.asks[i].hold)

    def _decide(self) -> None:
        if not self.new:
            return
        holds = [self.asks[i].hold for i in self.new]
        self.plan = decide_batch(
            holds,
            self.levels,
            self.locations,
            self.tracked,
            self.now,
            locations_version=self.locations_version,
        )
        for i, decision in zip(self.new, self.plan.decisions, strict=True):
            self.answers[i] = _decided(self.asks[i].hold, decision, self.headers[i], self.now)

    async def _write(self) -> None:
        plan = self.plan
        answers: list[tuple[repo.RequestId, bytes]] = []
        unclaimed: list[repo.RequestId] = []
        for i, ask in enumerate(self.asks):
            if ask.request is None or ask.request.key not in self.claimed_requests:
                continue
            answer = self.answers[i]
            assert answer is not None
            if answer.reservation is not None:
                answers.append((ask.request.key, ask.request.encode(answer.reservation)))
            else:
                unclaimed.append(ask.request.key)  # a refusal is not stored: retry may succeed
        dropped: list[str] = []
        lines: list[tuple[str, ReservationLine]] = []
        if plan is not None:
            for i, decision in zip(self.new, plan.decisions, strict=True):
                order_id = self.asks[i].hold.order_id
                if decision.held:
                    lines += [(order_id, line) for line in decision.lines]
                else:
                    dropped.append(order_id)
        if plan is None and not answers and not unclaimed:
            return
        if plan is not None:
            self._emit_levels(plan)
        await repo.write(
            self.conn,
            repo.BatchWrite(
                reserved_delta=plan.reserved_delta if plan else {},
                on_hand_delta=plan.on_hand_delta if plan else {},
                dropped_orders=dropped,
                lines=lines,
                sales=plan.sales if plan else [],
                answers=answers,
                unclaimed_requests=unclaimed,
                # The events go in the same statement: one round trip fewer under the locks.
                outbox=self.tx.outbox_arrays(),
            ),
        )

    def _emit_levels(self, plan: BatchPlan) -> None:
        """One StockChangedEvent per changed level and batch, with its final level."""
        for key in sorted(plan.levels):
            level = plan.levels[key]
            self.tx.emit(
                events_pb2.StockChangedEvent(
                    stock_level=level_to_proto(level),
                    channels=self.locations[level.location_id].channels,
                    cause=plan.cause(key),
                ),
                aggregate_id=level.sku_code,
            )

    def _count(self) -> None:
        """Business metrics, once the batch committed (one increment per figure and batch)."""
        new = set(self.new)
        outcomes: Counter[str] = Counter()
        units = confirmed = 0
        for i, answer in enumerate(self.answers):
            assert answer is not None
            hold = self.asks[i].hold
            if answer.repeated or answer.stored_response is not None:
                outcomes["repeated"] += 1
            elif i in new and answer.reservation is not None:
                outcomes["reserved"] += 1
                if hold.confirm:
                    confirmed += 1
                else:
                    units += sum(line.quantity for line in hold.lines)
            elif isinstance(answer.error, FailedPrecondition):
                outcomes["refused_no_stock"] += 1
        for outcome, count in outcomes.items():
            metrics.RESERVATIONS.labels(outcome).inc(count)
        if units:
            metrics.RESERVED_UNITS.inc(units)
        if confirmed:
            metrics.RESERVATION_ENDINGS.labels("confirmed").inc(confirmed)
        sales = self.plan.sales if self.plan else []
        if sales:
            metrics.MOVEMENTS.labels(MovementKind.SALE.value).inc(len(sales))
            metrics.MOVEMENT_UNITS.labels(MovementKind.SALE.value).inc(
                sum(s.quantity for s in sales)
            )


def _header(hold: Hold, now: datetime) -> repo.Header:
    return repo.Header(
        order_id=hold.order_id,
        channel=hold.channel,
        status=ReservationStatus.CONFIRMED if hold.confirm else ReservationStatus.ACTIVE,
        expires_at=now + timedelta(seconds=effective_ttl(hold.ttl_seconds)),
    )


def _from_record(record: repo.StoredRequest | None, request: RequestRecord) -> HoldOutcome:
    # A conflict means a committed record (an uncommitted one is waited for), and
    # committed records always carry their answer.
    if record is None or record.response is None:
        raise RuntimeError(f"request {request.key} conflicted but has no stored answer")
    if record.fingerprint != request.fingerprint:
        return HoldOutcome(
            error=InvalidArgument.field("request_id", "was already used for a different request")
        )
    return HoldOutcome(stored_response=record.response)


def _replay(existing: Reservation, hold: Hold) -> HoldOutcome:
    if same_hold(existing, hold):
        return HoldOutcome(reservation=existing, repeated=True)
    return HoldOutcome(
        error=AlreadyExists(f"order {hold.order_id} already has a reservation with other lines")
    )


def _decided(hold: Hold, decision: Decision, header: repo.Header, now: datetime) -> HoldOutcome:
    if not decision.held:
        return HoldOutcome(error=decision.error, skipped=decision.skipped)
    return HoldOutcome(
        reservation=Reservation(
            order_id=hold.order_id,
            channel=hold.channel,
            status=header.status,
            lines=tuple(sorted(decision.lines, key=lambda line: line.line_id)),
            expires_at=header.expires_at,
            created_at=now,
            updated_at=now,
        ),
        skipped=decision.skipped,
    )
