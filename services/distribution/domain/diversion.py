"""Diversion (窜货) and price alerts: what a dealer's sale or shipment must not do.

- A dealer's shipment to an address outside its territory, or a sale rung up by a dealer to
  a customer whose delivery address is outside its territory, is diversion.
- A distributor selling a SKU below the brand's minimum unit price (line total below
  minimum * quantity, so discounts count) undercuts the other dealers.
An order without a delivery province cannot be judged for territory and raises nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum

from services.distribution.domain.commission_rules import Line
from services.distribution.domain.organisation import Territory, UnitKind, in_territory


class AlertKind(IntEnum):
    """Numbers match omni.distribution.v1.AlertKind."""

    OUT_OF_TERRITORY_SHIPMENT = 1
    OUT_OF_TERRITORY_SALE = 2
    PRICE_BELOW_MINIMUM = 3


@dataclass(frozen=True)
class Dealer:
    unit_id: str
    kind: UnitKind
    territories: tuple[Territory, ...]


@dataclass(frozen=True)
class Shipment:
    fulfilment_id: str
    dealer: Dealer


@dataclass(frozen=True)
class AlertDraft:
    kind: AlertKind
    dealer_id: str
    order_id: str
    fulfilment_id: str = ""
    delivery_province: str = ""
    delivery_city: str = ""
    territories: tuple[Territory, ...] = ()
    sku_code: str = ""
    unit_price_minor: int = 0
    minimum_unit_price_minor: int = 0
    currency: str = ""


def detect_alerts(
    *,
    order_id: str,
    currency: str,
    delivery_province: str,
    delivery_city: str,
    selling_dealer: Dealer | None,
    shipments: Sequence[Shipment],
    lines: Sequence[Line],
    minimum_prices: Mapping[str, int],
) -> list[AlertDraft]:
    alerts: list[AlertDraft] = []
    if delivery_province:
        for shipment in shipments:
            dealer = shipment.dealer
            if not in_territory(dealer.territories, delivery_province, delivery_city):
                alerts.append(
                    AlertDraft(
                        AlertKind.OUT_OF_TERRITORY_SHIPMENT,
                        dealer.unit_id,
                        order_id,
                        fulfilment_id=shipment.fulfilment_id,
                        delivery_province=delivery_province,
                        delivery_city=delivery_city,
                        territories=dealer.territories,
                    )
                )
        if selling_dealer is not None and not in_territory(
            selling_dealer.territories, delivery_province, delivery_city
        ):
            alerts.append(
                AlertDraft(
                    AlertKind.OUT_OF_TERRITORY_SALE,
                    selling_dealer.unit_id,
                    order_id,
                    delivery_province=delivery_province,
                    delivery_city=delivery_city,
                    territories=selling_dealer.territories,
                )
            )
    if selling_dealer is not None and selling_dealer.kind == UnitKind.DISTRIBUTOR:
        for line in lines:
            minimum = minimum_prices.get(line.sku_code)
            if minimum is None or line.quantity <= 0:
                continue
            if line.total_minor < minimum * line.quantity:
                alerts.append(
                    AlertDraft(
                        AlertKind.PRICE_BELOW_MINIMUM,
                        selling_dealer.unit_id,
                        order_id,
                        sku_code=line.sku_code,
                        unit_price_minor=line.total_minor // line.quantity,
                        minimum_unit_price_minor=minimum,
                        currency=currency,
                    )
                )
    return alerts
