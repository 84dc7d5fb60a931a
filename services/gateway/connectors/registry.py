"""Which module translates for which connector type, for the outbound side."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from services.gateway.connectors import distributor, jd, local_life, pos, tmall, web_mall


@dataclass(frozen=True)
class Connector:
    name: str
    # Marketplaces know SKUs by their own ids (mapped through catalog).
    maps_skus: bool
    stock_message: Callable[[str, str, int], dict[str, object]]


CONNECTORS: dict[str, Connector] = {
    "pos": Connector("pos", False, pos.stock_message),
    "web_mall": Connector("web_mall", False, web_mall.stock_message),
    "tmall": Connector("tmall", True, tmall.stock_message),
    "jd": Connector("jd", True, jd.stock_message),
    "distributor_shop": Connector("distributor_shop", False, distributor.stock_message),
    "local_life": Connector("local_life", False, local_life.stock_message),
}


def connector_for(name: str) -> Connector:
    return CONNECTORS[name]
