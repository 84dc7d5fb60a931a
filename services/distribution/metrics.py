"""Business metrics of the distribution service."""

from __future__ import annotations

from prometheus_client import Counter

COMMISSION_ACCRUED = Counter(
    "omni_distribution_commission_accrued_minor_total",
    "Commissions and rebates accrued, in minor units, by role and currency",
    ["role", "currency"],
)
COMMISSION_CLAWED_BACK = Counter(
    "omni_distribution_commission_clawed_back_minor_total",
    "Commissions and rebates taken back by returns, in minor units, by role and currency",
    ["role", "currency"],
)
ORDERS_ATTRIBUTED = Counter(
    "omni_distribution_orders_attributed_total",
    "Completed orders applied, by commission flow (unattributed: no known unit)",
    ["flow"],
)
GUIDE_CODES_REJECTED = Counter(
    "omni_distribution_guide_codes_rejected_total",
    "Showroom-link guide codes on orders whose signature did not verify",
)
ALERTS_RAISED = Counter(
    "omni_distribution_alerts_raised_total", "Diversion and price alerts raised, by kind", ["kind"]
)
STATEMENTS_CLOSED = Counter(
    "omni_distribution_statements_closed_total", "Statements frozen by closing a period"
)
