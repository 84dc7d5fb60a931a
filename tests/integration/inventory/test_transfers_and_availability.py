"""Transfers (in transit visible, discrepancies recorded), ATP per channel with safety
stock and quotas, nearest stock, and locations."""

from __future__ import annotations

import grpc
import pytest
from omni.inventory.v1 import inventory_pb2 as res
from omni.inventory.v1 import inventory_service_pb2 as inv

from libs.grpc_errors import field_violations


async def test_transfer_ships_into_transit_and_records_what_did_not_arrive(inventory, unique):
    a = await inventory.track(f"TR-{unique}-A")
    b = await inventory.track(f"TR-{unique}-B")
    source = (await inventory.location(f"SRC-{unique}")).location_id
    target = (await inventory.location(f"DST-{unique}")).location_id
    await inventory.receive(source, a, 10, f"{unique}-a")
    await inventory.receive(source, b, 4, f"{unique}-b")
    requested = await inventory.stub.RequestTransfer(
        inv.RequestTransferRequest(
            request_id=f"{unique}-1",
            from_location_id=source,
            to_location_id=target,
            lines=[
                res.SkuQuantity(sku_code=a, quantity=6),
                res.SkuQuantity(sku_code=b, quantity=4),
            ],
            reason="pickup store lacks stock",
        )
    )
    transfer_id = requested.transfer.transfer_id
    assert requested.transfer.status == res.TRANSFER_STATUS_REQUESTED
    shipped = await inventory.stub.ShipTransfer(
        inv.ShipTransferRequest(
            request_id=f"{unique}-2",
            transfer_id=transfer_id,
            shipped=[res.SkuQuantity(sku_code=a, quantity=5)],  # one short; b as requested
        )
    )
    assert shipped.transfer.status == res.TRANSFER_STATUS_IN_TRANSIT
    assert (await inventory.level(target, a)).in_transit == 5
    assert (await inventory.level(target, b)).in_transit == 4
    await inventory.assert_ledger(source, a, 5)
    await inventory.assert_ledger(source, b, 0)
    with pytest.raises(grpc.aio.AioRpcError) as twice:
        await inventory.stub.ShipTransfer(
            inv.ShipTransferRequest(request_id=f"{unique}-3", transfer_id=transfer_id)
        )
    assert twice.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    received = await inventory.stub.ReceiveTransfer(
        inv.ReceiveTransferRequest(
            request_id=f"{unique}-4",
            transfer_id=transfer_id,
            received=[res.SkuQuantity(sku_code=b, quantity=3)],
        )
    )
    lines = {line.sku_code: line for line in received.transfer.lines}
    assert (lines[a].shipped_quantity, lines[a].received_quantity, lines[a].discrepancy) == (
        5,
        5,
        0,
    )
    assert (lines[b].shipped_quantity, lines[b].received_quantity, lines[b].discrepancy) == (
        4,
        3,
        -1,
    )
    for sku, on_hand in ((a, 5), (b, 3)):
        level = await inventory.level(target, sku)
        assert level.in_transit == 0
        await inventory.assert_ledger(target, sku, on_hand)
    assert await inventory.outbox_count("omni.inventory.v1.TransferShippedEvent", transfer_id) == 1
    assert await inventory.outbox_count("omni.inventory.v1.TransferReceivedEvent", transfer_id) == 1


async def test_transfer_refuses_reserved_stock_and_locations_without_transfers(inventory, unique):
    a = await inventory.track(f"TRR-{unique}")
    source = (await inventory.location(f"SRC-{unique}")).location_id
    target = (await inventory.location(f"DST-{unique}")).location_id
    no_transfers = (
        await inventory.location(f"NT-{unique}", capabilities=[res.CAPABILITY_PICKUP])
    ).location_id
    await inventory.receive(source, a, 3, f"{unique}-a")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await inventory.stub.RequestTransfer(
            inv.RequestTransferRequest(
                request_id=f"{unique}-0",
                from_location_id=source,
                to_location_id=no_transfers,
                lines=[res.SkuQuantity(sku_code=a, quantity=1)],
            )
        )
    assert [f for f, _ in field_violations(refused.value)] == ["to_location_id"]
    await inventory.stub.Reserve(
        inv.ReserveRequest(
            request_id=f"{unique}-r",
            order_id=f"O-{unique}",
            lines=[res.ReservationLine(line_id="1", sku_code=a, location_id=source, quantity=2)],
        )
    )
    transfer = await inventory.stub.RequestTransfer(
        inv.RequestTransferRequest(
            request_id=f"{unique}-1",
            from_location_id=source,
            to_location_id=target,
            lines=[res.SkuQuantity(sku_code=a, quantity=2)],
        )
    )
    with pytest.raises(grpc.aio.AioRpcError) as held:
        await inventory.stub.ShipTransfer(
            inv.ShipTransferRequest(
                request_id=f"{unique}-2", transfer_id=transfer.transfer.transfer_id
            )
        )
    assert held.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    await inventory.assert_ledger(source, a, 3)
    assert (await inventory.level(target, a)).in_transit == 0


async def test_availability_per_channel_with_safety_stock_and_quota(inventory, unique):
    a = await inventory.track(f"ATP-{unique}-A")
    b = await inventory.track(f"ATP-{unique}-B")
    channel = f"mall-{unique.lower()}"
    store = (
        await inventory.location(f"ST-{unique}", channels=(channel, "pos"), safety=2)
    ).location_id
    warehouse = (
        await inventory.location(
            f"WH-{unique}", type=res.LOCATION_TYPE_ECOMMERCE_WAREHOUSE, channels=(channel,)
        )
    ).location_id
    offline = (await inventory.location(f"OFF-{unique}", channels=("pos",))).location_id
    await inventory.receive(store, a, 5, f"{unique}-1")
    await inventory.receive(warehouse, a, 10, f"{unique}-2")
    await inventory.receive(offline, a, 7, f"{unique}-3")
    await inventory.receive(store, b, 1, f"{unique}-4")  # below the store's safety stock
    await inventory.stub.Reserve(
        inv.ReserveRequest(
            request_id=f"{unique}-5",
            order_id=f"O-{unique}",
            channel=channel,
            lines=[res.ReservationLine(line_id="1", sku_code=a, location_id=warehouse, quantity=4)],
        )
    )
    got = await inventory.stub.GetAvailability(
        inv.GetAvailabilityRequest(channel=channel, sku_codes=[a, b], include_locations=True)
    )
    sku_a, sku_b = got.skus
    # store: 5 - 0 - 2 = 3; warehouse: 10 - 4 - 0 = 6; the offline store does not count.
    assert (sku_a.available, sku_a.on_hand, sku_a.reserved, sku_a.safety_stock) == (9, 15, 4, 2)
    assert {level.location_id: level.available for level in sku_a.locations} == {
        store: 3,
        warehouse: 6,
    }
    assert sku_b.available == 0  # never negative, never covered by another location
    totals = await inventory.stub.GetAvailability(
        inv.GetAvailabilityRequest(channel=channel, sku_codes=[a, b])
    )
    assert [s.available for s in totals.skus] == [9, 0]
    assert not totals.skus[0].locations

    await inventory.stub.SetChannelQuota(
        inv.SetChannelQuotaRequest(request_id=f"{unique}-6", channel=channel, sku_code=a, quota=5)
    )
    capped = await inventory.stub.GetAvailability(
        inv.GetAvailabilityRequest(channel=channel, sku_codes=[a])
    )
    assert (capped.skus[0].available, capped.skus[0].quota) == (5, 5)
    await inventory.stub.SetSafetyStock(
        inv.SetSafetyStockRequest(
            request_id=f"{unique}-7", location_id=store, sku_code=a, safety_stock=5
        )
    )
    await inventory.stub.SetChannelQuota(
        inv.SetChannelQuotaRequest(
            request_id=f"{unique}-8", channel=channel, sku_code=a, clear_quota=True
        )
    )
    after = await inventory.stub.GetAvailability(
        inv.GetAvailabilityRequest(channel=channel, sku_codes=[a])
    )
    assert after.skus[0].available == 6 and not after.skus[0].HasField("quota")

    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await inventory.stub.GetAvailability(
            inv.GetAvailabilityRequest(channel=channel, sku_codes=[a, f"NOPE-{unique}"])
        )
    assert [f for f, _ in field_violations(unknown.value)] == ["sku_codes[1]"]


async def test_nearest_stock_is_nearest_first_within_radius_with_capability(inventory, unique):
    a = await inventory.track(f"NEAR-{unique}-A")
    b = await inventory.track(f"NEAR-{unique}-B")
    # Around People's Square, Shanghai (31.2304, 121.4737); 0.01 degree latitude ~ 1.1 km.
    near = (await inventory.location(f"NEAR-{unique}", latitude=31.2404)).location_id
    nearer = (await inventory.location(f"NEARER-{unique}", latitude=31.2334)).location_id
    far = (await inventory.location(f"FAR-{unique}", latitude=31.5304)).location_id  # ~33 km
    no_pickup = (
        await inventory.location(
            f"NP-{unique}", latitude=31.2314, capabilities=[res.CAPABILITY_EXPRESS_SHIPPING]
        )
    ).location_id
    never_open = (
        await inventory.location(
            f"CLOSED-{unique}",
            latitude=31.2324,
            # Open one minute a week: closed at almost any moment the test runs.
            opening_hours=[res.OpeningHours(day_of_week=1, open_minute=0, close_minute=1)],
        )
    ).location_id
    for i, location_id in enumerate((near, nearer, far, no_pickup, never_open)):
        await inventory.receive(location_id, a, 3, f"{unique}-a{i}")
    await inventory.receive(near, b, 1, f"{unique}-b")

    def ask(**extra):
        fields = {
            "latitude": 31.2304,
            "longitude": 121.4737,
            "radius_meters": 10_000,
            "skus": [
                res.SkuQuantity(sku_code=a, quantity=1),
                res.SkuQuantity(sku_code=b, quantity=1),
            ],
            "capability": res.CAPABILITY_PICKUP,
            **extra,
        }
        return inv.FindNearestStockRequest(**fields)

    found = await inventory.stub.FindNearestStock(ask())
    ids = [n.location.location_id for n in found.locations]
    assert ids == [never_open, nearer, near]
    assert [n.has_all for n in found.locations] == [False, False, True]
    assert found.locations[1].distance_meters == pytest.approx(333.6, abs=2)
    assert (await inventory.stub.FindNearestStock(ask(open_now=True))).locations[
        0
    ].location.location_id == nearer
    only_all = await inventory.stub.FindNearestStock(ask(require_all=True))
    assert [n.location.location_id for n in only_all.locations] == [near]
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await inventory.stub.FindNearestStock(ask(latitude=91, radius_meters=0))
    assert {f for f, _ in field_violations(bad.value)} == {"latitude", "radius_meters"}


async def test_locations_are_validated_unique_and_listed(inventory, unique):
    created = await inventory.location(f"LOC-{unique}", safety=0)
    assert created.active and created.create_time.seconds > 0
    defaulted = await inventory.stub.CreateLocation(
        inv.CreateLocationRequest(
            request_id=f"{unique}-d",
            use_type_default_safety_stock=True,
            location=res.Location(
                location_id=f"DEF-{unique}",
                name="Store with the type's buffer",
                type=res.LOCATION_TYPE_STORE,
                province="Zhejiang",
                city="Hangzhou",
                latitude=30.27,
                longitude=120.15,
                time_zone="Asia/Shanghai",
            ),
        )
    )
    assert defaulted.location.default_safety_stock == 2
    with pytest.raises(grpc.aio.AioRpcError) as taken:
        await inventory.stub.CreateLocation(
            inv.CreateLocationRequest(request_id=f"{unique}-again", location=created)
        )
    assert taken.value.code() == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await inventory.stub.CreateLocation(
            inv.CreateLocationRequest(
                request_id=f"{unique}-bad",
                location=res.Location(
                    location_id="lower case",
                    latitude=100,
                    time_zone="Mars/Olympus",
                    opening_hours=[
                        res.OpeningHours(day_of_week=8, open_minute=600, close_minute=500)
                    ],
                ),
            )
        )
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert {f for f, _ in field_violations(bad.value)} >= {
        "location.location_id",
        "location.name",
        "location.type",
        "location.latitude",
        "location.time_zone",
        "location.opening_hours[0].day_of_week",
        "location.opening_hours[0].close_minute",
    }
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await inventory.stub.GetLocation(inv.GetLocationRequest(location_id=f"NOPE-{unique}"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    channel = f"only-{unique.lower()}"
    for i in range(3):
        await inventory.location(f"L{i}-{unique}", channels=(channel,))
    first = await inventory.stub.ListLocations(
        inv.ListLocationsRequest(channel=channel, page_size=2)
    )
    rest = await inventory.stub.ListLocations(
        inv.ListLocationsRequest(channel=channel, page_size=2, page_token=first.next_page_token)
    )
    assert [loc.location_id for loc in [*first.locations, *rest.locations]] == [
        f"L{i}-{unique}" for i in range(3)
    ]
    assert rest.next_page_token == ""


async def test_a_deactivated_location_counts_for_nothing_and_takes_no_holds(inventory, unique):
    a = await inventory.track(f"DEACT-{unique}")
    channel = f"deact-{unique.lower()}"
    location = await inventory.location(f"DE-{unique}", channels=(channel,))
    await inventory.receive(location.location_id, a, 4, f"{unique}-in")

    async def atp() -> int:
        got = await inventory.stub.GetAvailability(
            inv.GetAvailabilityRequest(channel=channel, sku_codes=[a])
        )
        return got.skus[0].available

    assert await atp() == 4
    location.active = False
    location.opening_hours.append(
        res.OpeningHours(day_of_week=1, open_minute=540, close_minute=1260)
    )
    updated = await inventory.stub.UpdateLocation(
        inv.UpdateLocationRequest(request_id=f"{unique}-off", location=location)
    )
    assert not updated.location.active and len(updated.location.opening_hours) == 1
    assert await atp() == 0
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await inventory.stub.Reserve(
            inv.ReserveRequest(
                request_id=f"{unique}-r",
                order_id=f"O-{unique}",
                lines=[
                    res.ReservationLine(
                        line_id="1", sku_code=a, location_id=location.location_id, quantity=1
                    )
                ],
            )
        )
    assert [f for f, _ in field_violations(refused.value)] == ["lines[0].location_id"]
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        location.location_id = f"NOPE-{unique}"
        await inventory.stub.UpdateLocation(
            inv.UpdateLocationRequest(request_id=f"{unique}-nope", location=location)
        )
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
