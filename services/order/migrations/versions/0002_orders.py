"""Orders, lines, fulfilment orders (and their planned legs), history, routing rules, returns.

Revision ID: 0002
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE orders (
    order_id text PRIMARY KEY,
    channel_id text NOT NULL,
    channel_order_id text NOT NULL,
    content_hash text NOT NULL,
    channel_kind integer NOT NULL DEFAULT 0,
    member_id text NOT NULL DEFAULT '',
    guest_contact text NOT NULL DEFAULT '',
    mode text NOT NULL,
    aisle_handover text NOT NULL DEFAULT 'none',
    selling_store_id text NOT NULL DEFAULT '',
    selling_guide_staff_id text NOT NULL DEFAULT '',
    referring_guide_code text NOT NULL DEFAULT '',
    pickup_store_id text NOT NULL DEFAULT '',
    stock_channel text NOT NULL,
    address jsonb,
    currency text NOT NULL,
    total_minor bigint NOT NULL,
    status text NOT NULL,
    payment text NOT NULL,
    cancel_reason text NOT NULL DEFAULT '',
    routing jsonb,
    routing_attempts integer NOT NULL DEFAULT 0,
    retry_routing boolean NOT NULL DEFAULT false,
    lease_until timestamptz,
    pay_deadline timestamptz,
    unfillable_deadline timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- One order per channel order id: concurrent duplicate captures meet here.
    CONSTRAINT orders_channel_order_unique UNIQUE (channel_id, channel_order_id),
    CONSTRAINT orders_total_not_negative CHECK (total_minor >= 0)
);
CREATE INDEX orders_status_updated ON orders (status, updated_at);
CREATE INDEX orders_channel_created ON orders (channel_id, created_at DESC, order_id DESC);
CREATE INDEX orders_created ON orders (created_at DESC, order_id DESC);
CREATE INDEX orders_member ON orders (member_id) WHERE member_id <> '';
CREATE INDEX orders_selling_store ON orders (selling_store_id) WHERE selling_store_id <> '';
CREATE INDEX orders_pickup_store ON orders (pickup_store_id) WHERE pickup_store_id <> '';
CREATE INDEX orders_guide ON orders (selling_guide_staff_id) WHERE selling_guide_staff_id <> '';
CREATE INDEX orders_unpaid ON orders (pay_deadline) WHERE status = 'reserved';
CREATE INDEX orders_unfillable ON orders (unfillable_deadline) WHERE status = 'unfillable';

CREATE TABLE order_lines (
    order_id text NOT NULL REFERENCES orders (order_id),
    line_id text NOT NULL,
    position integer NOT NULL,
    sku_code text NOT NULL,
    quantity integer NOT NULL CHECK (quantity > 0),
    unit_price_minor bigint NOT NULL,
    discount_minor bigint NOT NULL,
    line_total_minor bigint NOT NULL CHECK (line_total_minor >= 0),
    category_code text NOT NULL DEFAULT '',
    returned_quantity integer NOT NULL DEFAULT 0,
    refunded_minor bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (order_id, line_id),
    CONSTRAINT order_lines_returned_le_sold CHECK (returned_quantity BETWEEN 0 AND quantity),
    CONSTRAINT order_lines_refund_le_total CHECK (refunded_minor BETWEEN 0 AND line_total_minor)
);
CREATE INDEX order_lines_sku ON order_lines (sku_code);

CREATE TABLE fulfilments (
    fulfilment_id text PRIMARY KEY,
    order_id text NOT NULL REFERENCES orders (order_id),
    seq integer NOT NULL,
    location_id text NOT NULL,
    status text NOT NULL,
    handover text NOT NULL,
    items jsonb NOT NULL,
    address jsonb,
    handover_store_id text NOT NULL DEFAULT '',
    via_transfer boolean NOT NULL DEFAULT false,
    transfer_id text NOT NULL DEFAULT '',
    -- The inventory reservation that holds this share (one per leg, see README).
    reservation_key text NOT NULL,
    distance_meters double precision NOT NULL DEFAULT 0,
    route_hint text NOT NULL DEFAULT '',
    assignee text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (order_id, seq)
);
CREATE INDEX fulfilments_location ON fulfilments (location_id);

CREATE TABLE order_history (
    id bigserial PRIMARY KEY,
    order_id text NOT NULL REFERENCES orders (order_id),
    from_status text NOT NULL,
    to_status text NOT NULL,
    note text NOT NULL DEFAULT '',
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_history_order ON order_history (order_id, id);

CREATE TABLE routing_rules (
    channel_id text NOT NULL,
    version integer NOT NULL,
    body jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel_id, version)
);

CREATE TABLE order_returns (
    return_id text PRIMARY KEY,
    order_id text NOT NULL REFERENCES orders (order_id),
    receiving_location_id text NOT NULL,
    by_post boolean NOT NULL DEFAULT false,
    lines jsonb NOT NULL,
    refund_total_minor bigint NOT NULL,
    currency text NOT NULL,
    -- Restocking at inventory happens after commit, the recovery task finishes it.
    restocked boolean NOT NULL DEFAULT false,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_returns_order ON order_returns (order_id);
CREATE INDEX order_returns_pending ON order_returns (received_at) WHERE NOT restocked;
"""

DOWNGRADE = """
DROP TABLE order_returns;
DROP TABLE routing_rules;
DROP TABLE order_history;
DROP TABLE fulfilments;
DROP TABLE order_lines;
DROP TABLE orders;
"""


def upgrade() -> None:
    for statement in UPGRADE.split(";"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE.split(";"):
        if statement.strip():
            op.execute(statement)
