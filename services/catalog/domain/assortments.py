"""Which SKUs a channel may sell: the assortment kinds and their channel rules.

- STANDARD: any channel.
- ONLINE_ONLY (网络专供) and CLEARANCE_ONLINE_ONLY: online channels only.
- OFFLINE_ONLY: offline channels (stores) only.
- A brand marked online-only puts every one of its SKUs on online channels only. The rule
  holds at sale time too: while the brand is online-only its SKUs are not sellable on an
  offline channel, whatever listing exists there (one from before the policy was turned on
  stays stored, may still be changed, and is sellable again if the policy is turned off).
- A discontinued SKU can't be listed anew; an existing entry may still be changed (to end it).
"""

from __future__ import annotations

import enum
from datetime import datetime

from libs.errors import FailedPrecondition
from services.catalog.domain.pricing import Window
from services.catalog.domain.skus import Lifecycle


class ChannelKind(enum.Enum):
    ONLINE = "online"
    OFFLINE = "offline"


class AssortmentKind(enum.Enum):
    STANDARD = "standard"
    ONLINE_ONLY = "online_only"
    OFFLINE_ONLY = "offline_only"
    CLEARANCE_ONLINE_ONLY = "clearance_online_only"


ONLINE_KINDS = {AssortmentKind.ONLINE_ONLY, AssortmentKind.CLEARANCE_ONLINE_ONLY}


def check_listing(
    *,
    sku_code: str,
    kind: AssortmentKind,
    channel_id: str,
    channel_kind: ChannelKind,
    brand_online_only: bool,
    lifecycle: Lifecycle,
    already_listed: bool,
) -> None:
    """Raises FailedPrecondition with the reason when the SKU may not be listed this way."""
    if lifecycle is Lifecycle.DISCONTINUED and not already_listed:
        raise FailedPrecondition(f"SKU {sku_code} is discontinued and can't be listed anew")
    if channel_kind is ChannelKind.OFFLINE:
        if kind in ONLINE_KINDS:
            raise FailedPrecondition(
                f"SKU {sku_code} is {kind.value} and channel {channel_id} is offline"
            )
        if brand_online_only and not already_listed:
            raise FailedPrecondition(
                f"SKU {sku_code}'s brand is sold online only and channel {channel_id} is offline"
            )
    if channel_kind is ChannelKind.ONLINE and kind is AssortmentKind.OFFLINE_ONLY:
        raise FailedPrecondition(
            f"SKU {sku_code} is offline_only and channel {channel_id} is online"
        )


def sellable(
    listing: Window | None, at: datetime, *, channel_kind: ChannelKind, brand_online_only: bool
) -> bool:
    """Whether a channel may sell the SKU at ``at``: the channel lists it with a sellable
    window containing ``at``, and an online-only brand's SKU is never sold offline."""
    if listing is None or not listing.contains(at):
        return False
    return not (brand_online_only and channel_kind is ChannelKind.OFFLINE)
