"""The flash sale's orders (tests/bench/flash_sale_load.py): the same every run, valid for
the web-mall connector, and hot SKUs wanted well beyond their stock."""

from __future__ import annotations

from collections import Counter

from services.gateway.connectors.web_mall import MallOrderIn
from tests.bench.flash_sale_load import sale_orders
from tests.bench.flash_sale_seed import HOT_SKUS, HOT_STOCK


def test_the_same_seed_gives_the_same_orders():
    assert sale_orders(50, HOT_SKUS, 13, "FS-") == sale_orders(50, HOT_SKUS, 13, "FS-")
    assert sale_orders(50, HOT_SKUS, 13, "FS-") != sale_orders(50, HOT_SKUS, 14, "FS-")


def test_every_order_is_a_valid_paid_express_mall_order_of_one_to_five_units():
    for order in sale_orders(200, HOT_SKUS, 13, "FS-"):
        parsed = MallOrderIn.model_validate_json(order.body)
        assert parsed.order_no == order.order_no
        assert parsed.fulfilment == "express"
        assert [(i.sku_code, i.quantity) for i in parsed.items] == [
            (order.sku_code, order.quantity)
        ]
        assert 1 <= order.quantity <= 5
        assert parsed.total == sum(i.quantity * i.unit_price for i in parsed.items)


def test_the_headline_skus_are_wanted_beyond_their_stock():
    demand: Counter[str] = Counter()
    for order in sale_orders(1000, HOT_SKUS, 13, "FS-"):
        demand[order.sku_code] += order.quantity
    assert demand[HOT_SKUS[0]] > 2 * HOT_STOCK
    assert demand[HOT_SKUS[1]] > HOT_STOCK
    assert min(demand.values()) > 0
