"""Each connector translates its documented sample into the platform command, and names
the field of a bad payload."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from omni.order.v1 import order_pb2
from pydantic import ValidationError

from libs.errors import InvalidArgument
from services.gateway.connectors import common, distributor, jd, local_life, pos, tmall, web_mall

SAMPLES = Path(__file__).resolve().parents[3] / "services/gateway/connectors/samples"


def sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / f"{name}.json").read_text())
    return data


def fields(error: InvalidArgument) -> list[str]:
    return [v.field for v in error.violations]


def test_pos_store_sale() -> None:
    order = pos.store_sale("POS-SH", pos.PosSaleIn.model_validate(sample("pos")["sale"]))
    assert order.channel_kind == order_pb2.CHANNEL_KIND_STORE
    assert order.fulfilment_mode == order_pb2.FULFILMENT_MODE_STORE_SALE
    assert order.selling_store_id == "STORE-SH-001"
    assert order.selling_guide_staff_id == "G1001"
    assert order.total.amount_minor == 18800
    assert order.lines[0].line_total.amount_minor == 18800


def test_pos_endless_aisle_needs_an_address_for_delivery() -> None:
    data = sample("pos")["endless_aisle"]
    order = pos.endless_aisle("POS-SH", pos.EndlessAisleIn.model_validate(data))
    assert order.fulfilment_mode == order_pb2.FULFILMENT_MODE_ENDLESS_AISLE
    assert order.endless_aisle_handover == order_pb2.ENDLESS_AISLE_HANDOVER_DELIVERY
    assert order.delivery_address.city == "Shanghai"
    data = {**data, "delivery_address": None}
    with pytest.raises(InvalidArgument) as caught:
        pos.endless_aisle("POS-SH", pos.EndlessAisleIn.model_validate(data))
    assert fields(caught.value) == ["delivery_address"]
    pickup = {**data, "handover": "pickup_in_store"}
    assert (
        pos.endless_aisle("POS-SH", pos.EndlessAisleIn.model_validate(pickup)).pickup_store_id
        == "STORE-SH-001"
    )


def test_pos_counter_return_refuses_a_line_twice() -> None:
    data = sample("pos")["counter_return"]
    command = pos.counter_return("POS-SH", pos.CounterReturnIn.model_validate(data))
    assert command.receiving_location_id == "STORE-SH-002"
    assert command.lines == (("1", 1, True),)
    assert pos.platform_lines(command.lines, ["L-a", "L-b"]) == [("L-a", 1, True)]
    assert pos.platform_lines((("L-b", 2, False),), ["L-a", "L-b"]) == [("L-b", 2, False)]
    with pytest.raises(InvalidArgument) as caught:
        pos.platform_lines((("3", 1, True),), ["L-a", "L-b"])
    assert fields(caught.value) == ["lines[0].line_id"]
    twice = {**data, "lines": data["lines"] * 2}
    with pytest.raises(InvalidArgument) as caught:
        pos.counter_return("POS-SH", pos.CounterReturnIn.model_validate(twice))
    assert fields(caught.value) == ["lines[1].line_id"]


def test_web_mall_order_and_its_rules() -> None:
    data = sample("web_mall")["order"]
    order = web_mall.mall_order("MALL", web_mall.MallOrderIn.model_validate(data))
    assert order.fulfilment_mode == order_pb2.FULFILMENT_MODE_SAME_CITY_DELIVERY
    assert order.referring_guide_code == "GC.v1.G1001.sig"
    assert order.stock_channel == "MALL"
    with pytest.raises(InvalidArgument) as caught:
        web_mall.mall_order(
            "MALL", web_mall.MallOrderIn.model_validate({**data, "fulfilment": "pickup"})
        )
    assert fields(caught.value) == ["pickup_store_id"]
    with pytest.raises(InvalidArgument) as caught:
        web_mall.mall_order("MALL", web_mall.MallOrderIn.model_validate({**data, "member_id": ""}))
    assert fields(caught.value) == ["guest_contact"]
    with pytest.raises(InvalidArgument) as caught:
        web_mall.mall_order("MALL", web_mall.MallOrderIn.model_validate({**data, "total": 1}))
    assert fields(caught.value) == ["total"]


def test_unknown_fields_are_refused_by_name() -> None:
    data = {**sample("web_mall")["order"], "totl": 1}
    with pytest.raises(ValidationError) as caught:
        web_mall.MallOrderIn.model_validate(data)
    assert caught.value.errors()[0]["loc"] == ("totl",)


def test_tmall_trade_maps_skus_and_yuan() -> None:
    data = tmall.TmallTradeIn.model_validate(sample("tmall")["trade"])
    assert tmall.external_ids(data) == ["5000000000001"]
    order = tmall.trade("TMALL", data, {"5000000000001": "TEE-RED-M"})
    assert order.channel_order_id == "3300112233445566"
    assert order.lines[0].sku_code == "TEE-RED-M"
    assert order.lines[0].unit_price.amount_minor == 9900
    assert order.lines[0].discount.amount_minor == 1000
    assert order.total.amount_minor == 18800
    with pytest.raises(InvalidArgument) as caught:
        tmall.trade("TMALL", data, {})
    assert fields(caught.value) == ["orders[0].sku_id"]


def test_jd_order_maps_skus() -> None:
    data = jd.JdOrderIn.model_validate(sample("jd")["order"])
    order = jd.order("JD", data, {"100012345678": "TEE-RED-M"})
    assert order.channel_order_id == "230000000123"
    assert order.delivery_address.district == "Chaoyang"
    with pytest.raises(InvalidArgument) as caught:
        jd.order("JD", data, {})
    assert fields(caught.value) == ["itemInfoList[0].skuId"]


def test_distributor_order() -> None:
    order = distributor.shop_order(
        "DIST", distributor.ShopOrderIn.model_validate(sample("distributor")["order"])
    )
    assert order.channel_kind == order_pb2.CHANNEL_KIND_DISTRIBUTION
    assert order.selling_store_id == ""
    assert order.total.amount_minor == 26700


def test_local_life_voucher_is_a_pickup_order_at_its_store() -> None:
    data = sample("local_life")
    order = local_life.voucher_order(
        "LL", local_life.VoucherOrderIn.model_validate(data["voucher"])
    )
    assert order.fulfilment_mode == order_pb2.FULFILMENT_MODE_STORE_PICKUP
    assert order.pickup_store_id == "STORE-SH-001"
    assert order.guest_contact == "138****1234"
    redemption = local_life.redemption(
        "LL", local_life.RedemptionIn.model_validate(data["redemption"])
    )
    assert redemption.voucher_order_id == order.channel_order_id


@pytest.mark.parametrize(
    ("value", "minor"), [("0", 0), ("59.9", 5990), ("59.90", 5990), ("1234567.01", 123456701)]
)
def test_yuan_to_minor(value: str, minor: int) -> None:
    assert common.yuan_to_minor(value, "f") == minor


@pytest.mark.parametrize("value", ["-1", "1.001", "abc", "NaN", "Infinity"])
def test_yuan_to_minor_refuses(value: str) -> None:
    with pytest.raises(InvalidArgument):
        common.yuan_to_minor(value, "f")


@pytest.mark.parametrize(
    ("module", "external", "expected"),
    [
        (tmall, "5000000000001", {"sku_id": "5000000000001", "quantity": 12, "type": 1}),
        (jd, "100012345678", {"skuId": "100012345678", "stockNum": 12}),
        (pos, "", {"type": "stock", "sku_code": "TEE-RED-M", "available": 12}),
    ],
)
def test_stock_messages_match_the_samples(
    module: Any, external: str, expected: dict[str, object]
) -> None:
    assert module.stock_message("TEE-RED-M", external, 12) == expected
    assert sample(module.__name__.rsplit(".", 1)[1])["stock_push"] == expected


def test_a_discount_larger_than_the_line_is_refused() -> None:
    with pytest.raises(InvalidArgument) as caught:
        common.order_lines([common.Line("A", 1, 100, 200)], "CNY")
    assert fields(caught.value) == ["lines[0].discount"]


def test_nul_characters_are_refused_by_name() -> None:
    data = {**sample("pos")["member_scan"], "store_id": "\x00"}
    with pytest.raises(ValidationError) as caught:
        pos.MemberScanIn.model_validate(data)
    assert caught.value.errors()[0]["loc"] == ("store_id",)


def test_stored_paths_drop_signature_parameters() -> None:
    from services.gateway.service_layer.inbound import redact_headers, redact_path

    assert (
        redact_path("/v1/x%00", "app_key=k&sign=ABC&timestamp=1")
        == "/v1/x%00?app_key=k&timestamp=1"
    )
    assert redact_path("/p", "") == "/p"
    assert redact_headers({"X-Omni-Signature": "s", "X-Omni-Key": "k"}) == {"x-omni-key": "k"}


def test_error_paths_render_field_names() -> None:
    from services.gateway.entrypoints.errors import field_path

    assert field_path(("body", "items", 0, "quantity")) == "items[0].quantity"
    assert field_path(("query", "sku_codes", 1)) == "sku_codes[1]"
    assert field_path(("body",)) == "body"


def test_channel_order_status_only_moves_forward() -> None:
    from services.gateway.service_layer.inbound import later_than

    assert "consumed" in later_than("ready_for_pickup")
    assert later_than("completed") == ["returned", "cancelled"]
    assert "accepted" not in later_than("accepted")


def test_mall_guide_delivery_names_the_guide_and_the_store() -> None:
    data = {
        **sample("web_mall")["order"],
        "fulfilment": "guide_delivery",
        "guide_store_id": "STORE-SH-001",
        "guide_staff_id": "G1001",
    }
    if "delivery_address" not in data:
        data["delivery_address"] = {"province": "Shanghai", "city": "Shanghai", "street": "1 Rd"}
    data.pop("pickup_store_id", None)
    order = web_mall.mall_order("MALL", web_mall.MallOrderIn.model_validate(data))
    assert order.fulfilment_mode == order_pb2.FULFILMENT_MODE_GUIDE_DELIVERY
    assert (order.selling_store_id, order.selling_guide_staff_id) == ("STORE-SH-001", "G1001")
    with pytest.raises(InvalidArgument) as caught:
        web_mall.mall_order(
            "MALL", web_mall.MallOrderIn.model_validate({**data, "guide_staff_id": ""})
        )
    assert fields(caught.value) == ["guide_staff_id"]
    with pytest.raises(InvalidArgument) as caught:
        web_mall.mall_order(
            "MALL", web_mall.MallOrderIn.model_validate({**data, "fulfilment": "express"})
        )
    assert fields(caught.value) == ["guide_store_id"]


def test_which_store_may_report_what() -> None:
    assert pos.may_report("shipped", "S1", "", "S1")
    assert not pos.may_report("shipped", "S1", "S2", "S2")
    assert pos.may_report("ready_for_pickup", "DEPOT", "S2", "S2")
    assert not pos.may_report("picked_up", "S2", "S3", "S2")
    assert pos.may_report("delivered", "S1", "S2", "S2")
    assert pos.may_report("delivered", "S1", "", "S1")
    assert not pos.may_report("delivered", "S1", "S2", "S3")
