"""The order aggregate: one order with its lines, fulfilment orders, history and returns.

Every change goes through a method that enforces the order's life (state_machine's
transition table), writes the history entry and records the event it caused; the unit of
work saves the aggregate and turns its recorded events into outbox rows in the same
transaction. No I/O here: the service layer loads the order, calls inventory, applies the
answer to the aggregate and commits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from libs.errors import FailedPrecondition, InvalidArgument, Validator
from services.order.domain import orders as rules
from services.order.domain.orders import Address, AisleHandover, Mode, NewOrder, Payment
from services.order.domain.state_machine import (
    DONE,
    FINAL,
    LEFT_STOCK,
    FulfilmentStatus,
    Handover,
    OrderStatus,
    Step,
    check_cancellable,
    check_order_transition,
    check_payable,
    next_fulfilment_status,
)

S = OrderStatus
F = FulfilmentStatus


class EventKind(Enum):
    CREATED = "OrderCreatedEvent"
    RESERVED = "OrderReservedEvent"
    PAID = "OrderPaidEvent"
    ALLOCATED = "OrderAllocatedEvent"
    UNFILLABLE = "OrderUnfillableEvent"
    COMPLETED = "OrderCompletedEvent"
    CANCELLED = "OrderCancelledEvent"
    FULFILMENT_SHIPPED = "FulfilmentShippedEvent"
    FULFILMENT_READY = "FulfilmentReadyForPickupEvent"
    FULFILMENT_DELIVERED = "FulfilmentDeliveredEvent"
    RETURN_RECEIVED = "OrderReturnReceivedEvent"


@dataclass(frozen=True)
class OrderEvent:
    """Something that happened to the order, as of the moment it happened (the status then;
    fulfilment and return events name theirs)."""

    kind: EventKind
    status: OrderStatus
    at: datetime
    fulfilment_id: str = ""
    reason: str = ""
    return_id: str = ""


@dataclass
class Line:
    line_id: str
    position: int
    sku_code: str
    quantity: int
    unit_price_minor: int
    discount_minor: int
    line_total_minor: int
    category_code: str = ""
    returned_quantity: int = 0
    refunded_minor: int = 0


@dataclass
class Fulfilment:
    """One location's share of the order (配送单); PLANNED while routed and held, before
    allocation makes it a fulfilment order."""

    fulfilment_id: str
    order_id: str
    seq: int
    location_id: str
    status: FulfilmentStatus
    handover: Handover
    items: list[dict[str, Any]]
    address: dict[str, Any] | None
    handover_store_id: str
    via_transfer: bool
    reservation_key: str
    distance_meters: float
    route_hint: str
    assignee: str
    transfer_id: str = ""
    transfer_requested: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def hold_lines(self, location_id: str | None = None) -> list[tuple[str, str, str, int]]:
        """(line id, sku, location, quantity) of what this leg holds."""
        where = location_id or self.location_id
        return [(i["line_id"], i["sku_code"], where, i["quantity"]) for i in self.items]

    def wanted(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for item in self.items:
            out[item["sku_code"]] = out.get(item["sku_code"], 0) + item["quantity"]
        return out


@dataclass(frozen=True)
class HistoryEntry:
    from_status: OrderStatus
    to_status: OrderStatus
    note: str
    at: datetime | None = None


@dataclass
class OrderReturn:
    return_id: str
    order_id: str
    receiving_location_id: str
    by_post: bool
    lines: list[dict[str, Any]]
    refund_total_minor: int
    currency: str
    received_at: datetime
    restocked: bool = False


@dataclass(frozen=True)
class ReturnRequestLine:
    line_id: str
    quantity: int
    resaleable: bool | None


@dataclass(frozen=True)
class PlannedLeg:
    """A routing decision's leg, as the aggregate needs it."""

    location_id: str
    line_ids: tuple[str, ...]
    via_transfer: bool
    distance_meters: float | None
    same_city: bool


@dataclass
class Order:
    order_id: str
    channel_id: str
    channel_order_id: str
    content_hash: str
    channel_kind: int
    member_id: str
    guest_contact: str
    mode: Mode
    aisle_handover: AisleHandover
    selling_store_id: str
    selling_guide_staff_id: str
    referring_guide_code: str
    pickup_store_id: str
    stock_channel: str
    address: Address | None
    currency: str
    total_minor: int
    status: OrderStatus
    payment: Payment
    created_at: datetime
    updated_at: datetime
    lines: list[Line] = field(default_factory=list)
    fulfilments: list[Fulfilment] = field(default_factory=list)
    cancel_reason: str = ""
    routing: dict[str, Any] | None = None
    routing_attempts: int = 0
    retry_routing: bool = False
    pay_deadline: datetime | None = None
    unfillable_deadline: datetime | None = None
    # A first-fit hold asked of inventory and not yet answered (persisted before the call,
    # so a resumed order asks the very same question again).
    hold_intent: dict[str, Any] | None = None
    # Optimistic concurrency: the version this aggregate was loaded at.
    version: int = 0
    returns: list[OrderReturn] = field(default_factory=list)
    history: list[HistoryEntry] = field(default_factory=list)
    # What this unit of work changed and caused (the repository writes these).
    events: list[OrderEvent] = field(default_factory=list)
    new_history: list[HistoryEntry] = field(default_factory=list)
    new_returns: list[OrderReturn] = field(default_factory=list)
    changed_fulfilments: set[str] = field(default_factory=set)
    removed_fulfilments: set[str] = field(default_factory=set)
    changed_lines: set[str] = field(default_factory=set)
    # Set by the repository: stored already (False until the first save).
    persisted: bool = False
    # Set by the driver: its last save gave up the lease (the order is at rest).
    lease_released: bool = False

    # --- creation ------------------------------------------------------------------------

    @classmethod
    def capture(
        cls, order_id: str, new: NewOrder, categories: dict[str, str], now: datetime
    ) -> Order:
        """A channel order taken in (after domain.orders.validate): lines priced, created."""
        assert new.mode is not None and new.payment is not None
        lines = [
            Line(
                line_id=rules.line_id(i),
                position=i,
                sku_code=line.sku_code,
                quantity=line.quantity,
                unit_price_minor=line.unit_price_minor,
                discount_minor=line.discount_minor,
                line_total_minor=rules.line_total(
                    line.unit_price_minor, line.quantity, line.discount_minor
                ),
                category_code=categories.get(line.sku_code, ""),
            )
            for i, line in enumerate(new.lines)
        ]
        order = cls(
            order_id=order_id,
            channel_id=new.channel_id,
            channel_order_id=new.channel_order_id,
            content_hash=new.fingerprint(),
            channel_kind=int(new.channel_kind or 0),
            member_id=new.member_id,
            guest_contact=new.guest_contact,
            mode=new.mode,
            aisle_handover=new.aisle_handover,
            selling_store_id=new.selling_store_id,
            selling_guide_staff_id=new.selling_guide_staff_id,
            referring_guide_code=new.referring_guide_code,
            pickup_store_id=new.pickup_store_id,
            stock_channel=new.stock_channel or new.channel_id,
            address=new.address,
            currency=new.currency,
            total_minor=sum(line.line_total_minor for line in lines),
            status=S.CREATED,
            payment=new.payment,
            created_at=now,
            updated_at=now,
            lines=lines,
        )
        order.new_history.append(HistoryEntry(S.CREATED, S.CREATED, "captured", now))
        order._record(EventKind.CREATED, now)
        return order

    @staticmethod
    def new_id() -> str:
        return f"O{uuid.uuid4().hex[:20].upper()}"

    # --- reading -------------------------------------------------------------------------

    @property
    def paid(self) -> bool:
        return self.payment is not Payment.AWAITING

    @property
    def is_store_sale(self) -> bool:
        return self.mode is Mode.STORE_SALE

    def planned(self) -> list[Fulfilment]:
        return [f for f in self.fulfilments if f.status is F.PLANNED]

    def fulfilment(self, fulfilment_id: str) -> Fulfilment:
        for f in self.fulfilments:
            if f.fulfilment_id == fulfilment_id:
                return f
        raise KeyError(fulfilment_id)

    def line(self, line_id: str) -> Line | None:
        return next((line for line in self.lines if line.line_id == line_id), None)

    def wanted(self) -> dict[str, int]:
        """Units per SKU over all lines (the same SKU on two lines adds up)."""
        out: dict[str, int] = {}
        for line in self.lines:
            out[line.sku_code] = out.get(line.sku_code, 0) + line.quantity
        return out

    def as_new_order(self) -> NewOrder:
        """The order as the channel sent it (to tell a re-sent duplicate from a different
        order under the same channel order id, and for routing)."""
        return NewOrder(
            channel_id=self.channel_id,
            channel_kind=str(self.channel_kind),
            channel_order_id=self.channel_order_id,
            member_id=self.member_id,
            guest_contact=self.guest_contact,
            mode=self.mode,
            aisle_handover=self.aisle_handover,
            selling_store_id=self.selling_store_id,
            selling_guide_staff_id=self.selling_guide_staff_id,
            referring_guide_code=self.referring_guide_code,
            pickup_store_id=self.pickup_store_id,
            address=self.address,
            lines=tuple(
                rules.NewLine(
                    sku_code=line.sku_code,
                    quantity=line.quantity,
                    unit_price_minor=line.unit_price_minor,
                    discount_minor=line.discount_minor,
                    currency=self.currency,
                )
                for line in self.lines
            ),
            payment=self.payment,
            stock_channel=self.stock_channel,
        )

    # --- the order's life ----------------------------------------------------------------

    def _record(
        self, kind: EventKind, now: datetime, **details: str
    ) -> None:  # details: fulfilment_id / reason / return_id
        self.events.append(OrderEvent(kind, self.status, now, **details))

    def _move(self, to: OrderStatus, note: str, now: datetime) -> None:
        check_order_transition(self.status, to)
        self.new_history.append(HistoryEntry(self.status, to, note, now))
        self.status = to
        self.updated_at = now

    def _note(self, note: str, now: datetime) -> None:
        """A history entry without a status change."""
        self.new_history.append(HistoryEntry(self.status, self.status, note, now))
        self.updated_at = now

    def _touch(self, fulfilment: Fulfilment, now: datetime) -> None:
        fulfilment.updated_at = now
        self.changed_fulfilments.add(fulfilment.fulfilment_id)

    # routing -------------------------------------------------------------------------------

    def start_first_fit(self, intent: dict[str, Any], note: str, now: datetime) -> None:
        """The hold about to be asked of inventory for the whole order at the first of the
        ranked locations able to take it; persisted before the call."""
        self._move(S.RESERVING, note, now)
        self.hold_intent = intent
        self.routing_attempts = max(self.routing_attempts, 1)

    def replan_first_fit(self, intent: dict[str, Any]) -> None:
        """The locations changed since the ranking: the hold is asked again, ranked anew."""
        if self.status is not S.RESERVING or self.hold_intent is None:
            raise FailedPrecondition(f"order {self.order_id} is not waiting for a first-fit hold")
        self.hold_intent = intent

    def first_fit_refused(self, reason: str, now: datetime) -> None:
        """No ranked location could take the whole order: it is routed in full (split,
        transfers, the unfillable queue) under the same attempt."""
        self.hold_intent = None
        self.routing_attempts = max(0, self.routing_attempts - 1)
        self._move(S.CREATED, f"no single location held it: {reason}", now)

    def first_fit_held(
        self,
        leg: PlannedLeg,
        handover: str,
        handover_store_id: str,
        reservation_key: str,
        explanation: dict[str, Any],
        now: datetime,
    ) -> None:
        """Inventory held the whole order at one location under ``reservation_key`` (and,
        for a sale at the counter, confirmed it): that is the route."""
        self.hold_intent = None
        self.routing = explanation
        self._drop_planned()
        f = self._leg(handover, handover_store_id, 1, leg, now)
        f.reservation_key = reservation_key
        self.fulfilments.append(f)
        self.changed_fulfilments.add(f.fulfilment_id)
        self._note(f"routed to {leg.location_id}", now)

    def routed(
        self,
        legs: list[PlannedLeg],
        handover: str,
        handover_store_id: str,
        explanation: dict[str, Any],
        attempt: int,
        now: datetime,
    ) -> None:
        """A routing decision: the planned legs (to be held next) replace earlier ones."""
        check_order_transition(self.status, S.RESERVING)
        self._drop_planned()
        for seq, leg in enumerate(legs, start=1):
            f = self._leg(handover, handover_store_id, seq, leg, now, attempt)
            self.fulfilments.append(f)
            self.changed_fulfilments.add(f.fulfilment_id)
        self.routing = explanation
        self.routing_attempts = attempt
        self.retry_routing = False
        self._move(S.RESERVING, f"routed to {', '.join(leg.location_id for leg in legs)}", now)

    def unroutable(
        self,
        explanation: dict[str, Any],
        attempt: int,
        reason: str,
        deadline: datetime,
        now: datetime,
    ) -> None:
        """No route now: the order waits in the unfillable queue (new stock wakes it)."""
        self.routing = explanation
        self.routing_attempts = attempt
        self.retry_routing = False
        if self.status is S.UNFILLABLE:
            self.updated_at = now
            return
        self.unfillable_deadline = deadline
        self._move(S.UNFILLABLE, reason, now)
        self._record(EventKind.UNFILLABLE, now, reason=reason)

    def hold_refused(self, reason: str, give_up: bool, deadline: datetime, now: datetime) -> None:
        """A planned leg could not be held (stock went since routing): route again, or park
        the order when that keeps happening."""
        check_order_transition(self.status, S.UNFILLABLE if give_up else S.CREATED)
        self._drop_planned()
        if give_up:
            self.unfillable_deadline = deadline
            self._move(S.UNFILLABLE, f"hold refused: {reason}", now)
        else:
            self._move(S.CREATED, f"hold refused: {reason}", now)

    def held(self, pay_deadline: datetime, now: datetime) -> None:
        """Every leg is held: paid orders go on to allocation, others wait for payment."""
        if self.paid:
            self._move(S.PAID, "stock held, paid", now)
        else:
            self.pay_deadline = pay_deadline
            self._move(S.RESERVED, "stock held, awaiting payment", now)
        self._record(EventKind.RESERVED, now)
        if self.paid:
            self._record(EventKind.PAID, now)

    def _drop_planned(self) -> None:
        for f in self.planned():
            self.removed_fulfilments.add(f.fulfilment_id)
            self.changed_fulfilments.discard(f.fulfilment_id)
        self.fulfilments = [f for f in self.fulfilments if f.status is not F.PLANNED]

    def _leg(
        self,
        handover: str,
        handover_store_id: str,
        seq: int,
        leg: PlannedLeg,
        now: datetime,
        attempt: int = 1,
    ) -> Fulfilment:
        distance = leg.distance_meters or 0.0
        if leg.via_transfer:
            hint = f"transfer to {handover_store_id}, {distance / 1000:.1f} km"
        elif handover in {"courier", "same_city_rider"}:
            city = self.address.city if self.address else ""
            hint = (
                f"{'same city' if leg.same_city else 'intercity'} to {city}, "
                f"{distance / 1000:.1f} km"
            )
        else:
            hint = f"hand over at {handover_store_id}"
        by_line = {line.line_id: line for line in self.lines}
        fid = f"{self.order_id}-F{seq}"
        self.removed_fulfilments.discard(fid)
        return Fulfilment(
            fulfilment_id=fid,
            order_id=self.order_id,
            seq=seq,
            location_id=leg.location_id,
            status=F.PLANNED,
            handover=Handover(handover),
            items=[
                {
                    "line_id": line_id,
                    "sku_code": by_line[line_id].sku_code,
                    "quantity": by_line[line_id].quantity,
                }
                for line_id in leg.line_ids
            ],
            address=_address_json(self.address)
            if handover in {"courier", "same_city_rider", "guide"}
            else None,
            handover_store_id=handover_store_id,
            via_transfer=leg.via_transfer,
            # A new key per routing attempt: a released hold keeps its key at inventory.
            reservation_key=f"{self.order_id}.{attempt}.{seq}",
            distance_meters=distance,
            route_hint=hint,
            # The guide who sold it brings it, unless someone else is assigned when it leaves.
            assignee=self.selling_guide_staff_id if handover == "guide" else "",
            created_at=now,
            updated_at=now,
        )

    # allocation ----------------------------------------------------------------------------

    def transfer_asked(self, fulfilment_id: str, now: datetime) -> None:
        f = self.fulfilment(fulfilment_id)
        f.transfer_requested = True
        self._touch(f, now)

    def transfer_made(self, fulfilment_id: str, transfer_id: str, now: datetime) -> None:
        f = self.fulfilment(fulfilment_id)
        f.transfer_id = transfer_id
        self._touch(f, now)

    def allocation_failed(self, reason: str, now: datetime) -> None:
        self.cancel_reason = "allocation_failed"
        self._move(S.CANCELLING, f"transfer refused: {reason}", now)

    def allocate(self, now: datetime) -> None:
        """Paid and held: the planned legs become fulfilment orders. A sale at the counter
        is handed over at once (its holds confirmed at inventory) and completes."""
        check_order_transition(self.status, S.ALLOCATED)
        legs = self.planned()
        for f in legs:
            f.status = F.DELIVERED if self.is_store_sale else F.PENDING
            self._touch(f, now)
        self._move(S.ALLOCATED, f"{len(legs)} fulfilment order(s)", now)
        self._record(EventKind.ALLOCATED, now)
        if self.is_store_sale:
            for f in legs:
                self._record(EventKind.FULFILMENT_DELIVERED, now, fulfilment_id=f.fulfilment_id)
            self._complete("carried out at the counter", now)

    def _complete(self, note: str, now: datetime) -> None:
        self._move(S.COMPLETED, note, now)
        self._record(EventKind.COMPLETED, now)

    # payment and cancel --------------------------------------------------------------------

    def pay(self, payment: Payment, now: datetime) -> bool:
        """Payment arrived. The same payment twice changes nothing (False); a reserved order
        becomes paid; one still being routed or held takes the payment with it."""
        if payment is Payment.AWAITING:
            raise InvalidArgument.field("payment_state", "must be PAID_ONLINE or PAID_AT_POS")
        if self.paid:
            return False
        check_payable(self.status)
        self.payment = payment
        self.updated_at = now
        if self.status is S.RESERVED:
            self._move(S.PAID, payment.value, now)
            self._record(EventKind.PAID, now)
        return True

    def request_cancel(self, reason: str, now: datetime) -> None:
        if len(reason) > rules.MAX_TEXT_LENGTH:
            raise InvalidArgument.field(
                "reason", f"must be at most {rules.MAX_TEXT_LENGTH} characters"
            )
        if self.status in {S.CANCELLING, S.CANCELLED}:
            return
        check_cancellable(self.status)
        for f in self.fulfilments:
            if f.status not in {F.PLANNED, F.PENDING, F.READY_FOR_PICKUP}:
                raise FailedPrecondition(
                    f"fulfilment order {f.fulfilment_id} is {f.status.value}; goods have left, "
                    "so the order cannot be cancelled (return it instead)"
                )
        self.begin_cancel(reason, now)

    def begin_cancel(self, reason: str, now: datetime) -> None:
        """Nothing held yet → cancelled at once; otherwise CANCELLING, and the worker
        gives the holds back."""
        self.cancel_reason = reason
        if self.status in {S.CREATED, S.UNFILLABLE} and self.hold_intent is None:
            self._drop_planned()
            self._move(S.CANCELLED, reason, now)
            self._record(EventKind.CANCELLED, now, reason=reason)
        else:
            self._move(S.CANCELLING, reason, now)

    def released(self, notes: list[str], now: datetime) -> None:
        """Everything the order had at inventory was given back (and its transfers called
        off): cancelled."""
        check_order_transition(self.status, S.CANCELLED)
        self.hold_intent = None
        for f in self.fulfilments:
            if f.status is not F.CANCELLED:
                f.status = F.CANCELLED
                self._touch(f, now)
        for note in notes:
            self._note(note, now)
        reason = self.cancel_reason or "cancelled"
        self._move(S.CANCELLED, f"released: {reason}", now)
        self._record(EventKind.CANCELLED, now, reason=reason)

    def hold_expired(self, reservation_key: str, now: datetime) -> bool:
        """Inventory ended one of our holds on its own (its safety-net expiry). An unpaid
        order is cancelled; for a paid one the fact goes into its history. True when the
        hold was one of this order's current legs."""
        if not any(f.reservation_key == reservation_key for f in self.fulfilments):
            return False
        if self.status is S.RESERVED:
            self.begin_cancel("hold_expired", now)
        elif self.status in {S.PAID, S.ALLOCATED, S.SHIPPED}:
            self._note(f"hold {reservation_key} expired at inventory", now)
        return True

    # fulfilment steps ----------------------------------------------------------------------

    def next_step(self, fulfilment_id: str, step: Step) -> tuple[Fulfilment, FulfilmentStatus]:
        """Where the fulfilment order goes on this step (FailedPrecondition when it cannot)."""
        if self.status not in {S.ALLOCATED, S.SHIPPED}:
            raise FailedPrecondition(f"order {self.order_id} is {self.status.value}")
        f = self.fulfilment(fulfilment_id)
        return f, next_fulfilment_status(f.status, step, f.handover, f.via_transfer)

    def fulfilment_moved(
        self,
        fulfilment_id: str,
        to: FulfilmentStatus,
        now: datetime,
        *,
        assignee: str = "",
        reservation_key: str = "",
    ) -> Fulfilment:
        f = self.fulfilment(fulfilment_id)
        before = f.status
        f.status = to
        if assignee:
            f.assignee = assignee
        if reservation_key:
            f.reservation_key = reservation_key
        self._touch(f, now)
        if to is F.SHIPPED:
            self._record(EventKind.FULFILMENT_SHIPPED, now, fulfilment_id=fulfilment_id)
        elif to is F.READY_FOR_PICKUP:
            self._record(EventKind.FULFILMENT_READY, now, fulfilment_id=fulfilment_id)
        elif to in DONE:
            self._record(EventKind.FULFILMENT_DELIVERED, now, fulfilment_id=fulfilment_id)
        if to in LEFT_STOCK and before not in LEFT_STOCK and self.status is S.ALLOCATED:
            self._move(S.SHIPPED, f"{fulfilment_id} {to.value}", now)
        if all(x.status in DONE for x in self.fulfilments) and self.status not in FINAL:
            self._complete("every fulfilment order delivered", now)
        return f

    # returns -------------------------------------------------------------------------------

    def receive_return(
        self,
        receiving_location_id: str,
        by_post: bool,
        lines: list[ReturnRequestLine],
        now: datetime,
    ) -> OrderReturn:
        """Goods back at any store or by post: refund per line so that all refunds of a line
        add up to its total (domain.orders.refund_for)."""
        if self.status not in {S.SHIPPED, S.COMPLETED}:
            raise FailedPrecondition(
                f"order {self.order_id} is {self.status.value}; only goods that reached the "
                "customer can be returned"
            )
        v = Validator()
        for i, line in enumerate(lines):
            sold = self.line(line.line_id)
            if sold is None:
                v.add(f"lines[{i}].line_id", f"order {self.order_id} has no line {line.line_id}")
            elif sold.returned_quantity + line.quantity > sold.quantity:
                v.add(
                    f"lines[{i}].quantity",
                    f"{sold.quantity - sold.returned_quantity} unit(s) of {line.line_id} "
                    "can still be returned",
                )
        v.raise_if_any()
        returned: list[dict[str, Any]] = []
        for line in lines:
            sold = self.line(line.line_id)
            assert sold is not None
            refund = rules.refund_for(
                sold.line_total_minor, sold.quantity, sold.returned_quantity, line.quantity
            )
            sold.returned_quantity += line.quantity
            sold.refunded_minor += refund
            self.changed_lines.add(sold.line_id)
            returned.append(
                {
                    "line_id": line.line_id,
                    "sku_code": sold.sku_code,
                    "quantity": line.quantity,
                    "refund_minor": refund,
                    "restock": bool(line.resaleable),
                }
            )
        record = OrderReturn(
            return_id=f"R{uuid.uuid4().hex[:20].upper()}",
            order_id=self.order_id,
            receiving_location_id=receiving_location_id,
            by_post=by_post,
            lines=returned,
            refund_total_minor=sum(r["refund_minor"] for r in returned),
            currency=self.currency,
            received_at=now,
        )
        self.returns.append(record)
        self.new_returns.append(record)
        self._note(f"return {record.return_id} received", now)
        self._record(EventKind.RETURN_RECEIVED, now, return_id=record.return_id)
        return record

    # saving --------------------------------------------------------------------------------

    def saved(self) -> None:
        """The repository wrote everything: start a clean slate (events were taken)."""
        self.history.extend(self.new_history)
        self.new_history = []
        self.new_returns = []
        self.events = []
        self.changed_fulfilments = set()
        self.removed_fulfilments = set()
        self.changed_lines = set()
        self.persisted = True
        self.version += 1


def deadline_after(now: datetime, seconds: int) -> datetime:
    return now + timedelta(seconds=int(seconds))


def _address_json(address: Address | None) -> dict[str, Any] | None:
    if address is None:
        return None
    return {
        "province": address.province,
        "city": address.city,
        "district": address.district,
        "street": address.street,
        "postal_code": address.postal_code,
        "latitude": address.latitude,
        "longitude": address.longitude,
    }


def address_json(address: Address | None) -> dict[str, Any] | None:
    return _address_json(address)
