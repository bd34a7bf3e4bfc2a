"""route change notifications

Triggers that NOTIFY `cloudmailin_routes` whenever a row the SMTP edge routes by is updated or
deleted, so the edge can cache routes and drop them the moment they change (smtp_edge/routes.py).
The payload names what changed: `address:<local_id>` or `resource:<id>`. NOTIFY is delivered at
commit and not at all on rollback, so a listener only ever hears of changes that happened.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 20:10:00

"""
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    op.execute("""
        CREATE FUNCTION cloudmailin_route_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_TABLE_NAME = 'addresses' THEN
                PERFORM pg_notify('cloudmailin_routes', 'address:' || OLD.local_id);
            ELSE
                PERFORM pg_notify('cloudmailin_routes', 'resource:' || OLD.id);
            END IF;
            RETURN NULL;
        END
        $$
    """)
    op.execute("""
        CREATE TRIGGER addresses_route_changed AFTER UPDATE OR DELETE ON addresses
        FOR EACH ROW EXECUTE FUNCTION cloudmailin_route_changed()
    """)
    # Only the columns a route is made of: token refreshes and bookkeeping stay quiet.
    op.execute("""
        CREATE TRIGGER resources_route_changed AFTER UPDATE ON resources
        FOR EACH ROW
        WHEN (OLD.plan IS DISTINCT FROM NEW.plan
              OR OLD.state IS DISTINCT FROM NEW.state
              OR OLD.log_input_url_enc IS DISTINCT FROM NEW.log_input_url_enc)
        EXECUTE FUNCTION cloudmailin_route_changed()
    """)
    op.execute("""
        CREATE TRIGGER resources_route_deleted AFTER DELETE ON resources
        FOR EACH ROW EXECUTE FUNCTION cloudmailin_route_changed()
    """)


def downgrade():
    op.execute("DROP TRIGGER resources_route_deleted ON resources")
    op.execute("DROP TRIGGER resources_route_changed ON resources")
    op.execute("DROP TRIGGER addresses_route_changed ON addresses")
    op.execute("DROP FUNCTION cloudmailin_route_changed()")
