"""Diversion and price alerts: list them within scope, resolve them with a note."""

from __future__ import annotations

from libs.errors import FailedPrecondition, NotFound, Validator
from libs.pagination import decode_token, encode_token
from libs.unit_of_work import UnitOfWork
from services.distribution.adapters.alert_repository import AlertRepository
from services.distribution.adapters.repository import Repository
from services.distribution.domain.organisation import Caller
from services.distribution.service_layer.organisation import visible_unit

MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 100
ALERT_OPEN, ALERT_RESOLVED = 1, 2
MAX_NOTE_LENGTH = 2000


async def list_alerts(
    uow: UnitOfWork,
    caller: Caller,
    *,
    unit_id: str,
    status: int,
    kind: int,
    page_size: int,
    page_token: str,
) -> tuple[list[dict[str, object]], str]:
    """Alerts of dealers at or below a unit in the caller's scope, in alert-id order."""
    check = Validator()
    check.check(0 <= page_size <= MAX_PAGE_SIZE, "page_size", f"must be 0-{MAX_PAGE_SIZE}")
    check.check(status in (0, ALERT_OPEN, ALERT_RESOLVED), "status", "must be OPEN or RESOLVED")
    check.check(kind in (0, 1, 2, 3), "kind", "must be a known alert kind")
    check.raise_if_any()
    after = decode_token(page_token, 1, (str,))
    repo = Repository(uow.session)
    if unit_id:
        path = (await visible_unit(repo, caller, unit_id, "unit_id")).path
    else:
        path = caller.scope_path
    size = page_size or DEFAULT_PAGE_SIZE
    rows = await AlertRepository(uow.session).in_scope(
        path, str(after[0]) if after else "", status, kind, size + 1
    )
    token = encode_token([str(rows[size - 1]["alert_id"])]) if len(rows) > size else ""
    return rows[:size], token


async def resolve_alert(
    uow: UnitOfWork, caller: Caller, alert_id: str, note: str
) -> dict[str, object]:
    """Close an open alert with what was done about it; only within the caller's scope."""
    check = Validator()
    check.check(bool(alert_id), "alert_id", "is required")
    check.check(bool(note.strip()), "resolution_note", "say how the alert was resolved")
    check.check(len(note) <= MAX_NOTE_LENGTH, "resolution_note", "is too long")
    check.raise_if_any()
    repo = AlertRepository(uow.session)
    row = await repo.lock(alert_id)
    if row is None:
        raise NotFound(
            f"alert {alert_id} does not exist",
            field="alert_id",
            resource_type="alert",
            resource_name=alert_id,
        )
    caller.require(str(row["dealer_path"]), f"alert {alert_id}")
    if row["status"] != ALERT_OPEN:
        raise FailedPrecondition(f"alert {alert_id} is already resolved")
    return await repo.resolve(alert_id, note.strip(), caller.staff_id)
