"""Member benchmark: member-code resolution latency and segment evaluation time over a
bulk-loaded member base, against a member service running as its own OS process.

Size: OMNI_BENCH_MEMBER_MEMBERS (default 1,000,000) members and OMNI_BENCH_MEMBER_HISTORY
(default 10,000,000) purchase-history rows — the issue's size — loaded with generate_series
(indexes and FK triggers off during the load, indexes rebuilt after, then every loaded table
ANALYZEd so the planner sees the real sizes). The load alone takes about 9 minutes on a
shared 2-core machine; set the two variables lower for a quicker run (the report states the
size measured).
Then OMNI_BENCH_MEMBER_CODES (default 1,000) sequential Issue+Resolve pairs over gRPC
(resolution timed), and each segment rule evaluated OMNI_BENCH_MEMBER_SEGMENT_RUNS (default
3) times (first page of 1,000 ids plus the total count, over gRPC).
"""

from __future__ import annotations

import os
import statistics
import time

import asyncpg
import grpc
from omni.member.v1 import events_pb2 as ev
from omni.member.v1 import member_pb2 as m
from omni.member.v1 import member_service_pb2 as pb
from omni.member.v1 import member_service_pb2_grpc as pb_grpc

from libs.db import asyncpg_connect_kwargs, ensure_database, migrate
from libs.testing.plugin import REPO, TestStack
from libs.testing.services import ServiceSubprocess
from tests.bench.report import Report, latency_summary

SECTION = "member"
BULK_LOADED = ("members", "purchase_history", "purchase_categories")
# The load's ids and phones ('B' + 9 digits, '+86139' + 8 digits) hold up to this many members.
MAX_MEMBERS = 99_999_999
CATEGORIES = 20  # category 0 is PHONE, 1 is CASE, the rest C2..C19

MEMBERS_SQL = """
INSERT INTO members (member_id, phone, name, source, distributor_id, owner_guide_staff_id,
    owner_store_id, tier, points_balance, stored_value_minor, lifetime_spend_minor,
    order_count, last_purchase_at, consents, state, created_at)
SELECT 'B' || lpad(i::text, 9, '0'),
       '+86139' || lpad(i::text, 8, '0'),
       'Bench member',
       1 + i % 4, '', 'G' || (i % 5000), 'S' || (i % 500), 1 + (i / 7) % 4, 0, 0,
       (i::bigint * 7919) % 2000000, 1 + (i * 13) % 19,
       now() - make_interval(days => (i * 31) % 500),
       CASE WHEN i % 2 = 0 THEN '{1}'::smallint[] ELSE '{}'::smallint[] END,
       1, now()
FROM generate_series(1, $1::int) AS i
"""

HISTORY_SQL = """
INSERT INTO purchase_history (member_id, kind, order_id, return_id, channel_id, channel_kind,
    store_id, amount_minor, currency_code, categories, points_delta, occurred_at)
SELECT 'B' || lpad((1 + floor(random() * $1::int))::int::text, 9, '0'), 1, 'BO' || j, '', 'pos', 3,
       'S' || (j % 500), 1000 + (j * 37) % 100000, 'CNY',
       ARRAY[CASE j % 20 WHEN 0 THEN 'PHONE' WHEN 1 THEN 'CASE' ELSE 'C' || (j % 20) END],
       0, now() - make_interval(days => ((j * 17) % 730)::int)
FROM generate_series($2::bigint, $3::bigint) AS j
"""

CATEGORIES_SQL = """
INSERT INTO purchase_categories (history_id, category, member_id, occurred_at)
SELECT id, unnest(categories), member_id, occurred_at FROM purchase_history WHERE kind = 1
"""


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


async def _bulk_load(dsn_kwargs: dict[str, object], members: int, history: int) -> float:
    started = time.perf_counter()
    conn = await asyncpg.connect(**dsn_kwargs)
    try:
        await conn.execute("SET session_replication_role = replica")  # no FK triggers
        await conn.execute("SET maintenance_work_mem = '512MB'")
        await conn.execute("SELECT setseed(0.42)")  # the same history on every run
        indexes = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY($1::text[]) "
            "AND indexname NOT LIKE '%pkey' "
            "AND indexname <> 'uq_members_phone'",
            list(BULK_LOADED),
        )
        for index in indexes:
            await conn.execute(f'DROP INDEX "{index["indexname"]}"')
        await conn.execute(MEMBERS_SQL, members)
        chunk = 2_000_000
        for start in range(1, history + 1, chunk):
            await conn.execute(HISTORY_SQL, members, start, min(history, start + chunk - 1))
        await conn.execute(CATEGORIES_SQL)
        for index in indexes:
            await conn.execute(index["indexdef"])
        # Statistics of every bulk-loaded table: without them the planner assumes empty
        # tables and the segment queries pick plans that do not fit the data.
        for table in BULK_LOADED:
            await conn.execute(f"ANALYZE {table}")
    finally:
        await conn.close()
    return time.perf_counter() - started


def _rules() -> dict[str, m.SegmentRule]:
    def rule(*conditions: m.SegmentCondition) -> m.SegmentRule:
        return m.SegmentRule(all_of=list(conditions))

    return {
        "bought PHONE within 30 days and not CASE": rule(
            m.SegmentCondition(
                category_purchase=m.CategoryPurchase(
                    bought_category_code="PHONE", within_days=30, not_bought_category_code="CASE"
                )
            )
        ),
        "RFM group LOYAL": rule(m.SegmentCondition(rfm_group=m.RFM_GROUP_LOYAL)),
        "tier GOLD and owning store S7": rule(
            m.SegmentCondition(tier=ev.MEMBER_TIER_GOLD), m.SegmentCondition(owner_store_id="S7")
        ),
        "owning guide G42 and bought C5 within 90 days": rule(
            m.SegmentCondition(owner_guide_staff_id="G42"),
            m.SegmentCondition(
                category_purchase=m.CategoryPurchase(bought_category_code="C5", within_days=90)
            ),
        ),
    }


async def run(stack: TestStack, report: Report) -> None:
    members = _env_int("OMNI_BENCH_MEMBER_MEMBERS", 1_000_000)
    history = _env_int("OMNI_BENCH_MEMBER_HISTORY", 10_000_000)
    if not 1 <= members <= MAX_MEMBERS or history < 0:
        raise ValueError(f"bench size must be 1-{MAX_MEMBERS:,} members and >= 0 history rows")
    codes = _env_int("OMNI_BENCH_MEMBER_CODES", 1_000)
    segment_runs = _env_int("OMNI_BENCH_MEMBER_SEGMENT_RUNS", 3)
    size = f"{members:,} members, {history:,} history rows"

    url = stack.settings("member").database_url()
    await ensure_database(url)
    await migrate(url, REPO / "services" / "member" / "migrations")
    load_seconds = await _bulk_load(asyncpg_connect_kwargs(url), members, history)
    report.add(SECTION, f"bulk load incl. index rebuild ({size})", f"{load_seconds:.1f} s")

    env = {**stack.env(), "OMNI_MEMBER_CODE_KEY": "bench-member-code-key"}
    service = ServiceSubprocess("member", env, REPO / ".omni" / "bench-member.log")
    try:
        await service.wait_serving()
        async with grpc.aio.insecure_channel(service.address) as channel:
            stub = pb_grpc.MemberServiceStub(channel)
            latencies: list[float] = []
            for n in range(codes):
                member_id = f"B{1 + (n * 104729) % members:09d}"
                issued = await stub.IssueMemberCode(
                    pb.IssueMemberCodeRequest(member_id=member_id), timeout=10
                )
                started = time.perf_counter()
                resolved = await stub.ResolveMemberCode(
                    pb.ResolveMemberCodeRequest(request_id=f"bench-{n}", code=issued.code),
                    timeout=10,
                )
                latencies.append(time.perf_counter() - started)
                assert resolved.member.member_id == member_id
            report.add(
                SECTION, f"member-code resolution over gRPC ({size})", latency_summary(latencies)
            )

            for name, rule in _rules().items():
                timings: list[float] = []
                total = 0
                for _ in range(segment_runs):
                    started = time.perf_counter()
                    page = await stub.EvaluateSegment(
                        pb.EvaluateSegmentRequest(rule=rule, page_size=1000), timeout=300
                    )
                    timings.append(time.perf_counter() - started)
                    total = page.total_size
                report.add(
                    SECTION,
                    f"segment '{name}': first 1,000 ids + total count ({size})",
                    f"median {statistics.median(timings):.2f} s over {segment_runs} runs, "
                    f"{total:,} members match",
                )
    finally:
        service.terminate()
        service.wait()
