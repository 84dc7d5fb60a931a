"""A version of the set of locations, moved by every change of any location (a statement
trigger, so no code path can forget it). Callers that rank cached locations (the order
service's first-fit holds) send the version they ranked at; a hold whose version is behind
is refused as stale.

Revision ID: 0005
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE TABLE locations_version ("
        " id boolean PRIMARY KEY DEFAULT true CHECK (id),"
        " version bigint NOT NULL)"
    )
    op.execute("INSERT INTO locations_version (id, version) VALUES (true, 1)")
    op.execute(
        """
        CREATE FUNCTION locations_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE locations_version SET version = version + 1;
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER locations_version_moves AFTER INSERT OR UPDATE OR DELETE ON locations "
        "FOR EACH STATEMENT EXECUTE FUNCTION locations_changed()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER locations_version_moves ON locations")
    op.execute("DROP FUNCTION locations_changed()")
    op.execute("DROP TABLE locations_version")
