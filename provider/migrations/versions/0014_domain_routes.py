"""domain route notifications

The SMTP edge caches the routes of custom inbound domains as it caches forward addresses
(smtp_edge/routes.py). This trigger NOTIFYs `cloudmailin_routes` with `domain:<name>` at the commit
of any insert, update or delete of an inbound row of `domains` (a wildcard's name is `*.<parent>`),
so every edge drops what it cached for that name at once: a domain deleted, verified or freed by
a deprovision routes (or stops routing) from the next RCPT on. Changes to the address or the
resource a domain routes to already notify through migration 0002's triggers.

Revision ID: 0014_domain_routes
Revises: 0013_address_stores
Create Date: 2026-12-01 10:30:00

"""
from alembic import op

revision = '0014_domain_routes'
down_revision = '0013_address_stores'
branch_labels = None
depends_on = None


def upgrade():
    op.execute("""
        CREATE FUNCTION cloudmailin_domain_route_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP <> 'INSERT' AND OLD.kind = 'inbound' THEN
                PERFORM pg_notify('cloudmailin_routes', 'domain:' || OLD.name);
            END IF;
            IF TG_OP <> 'DELETE' AND NEW.kind = 'inbound'
               AND (TG_OP = 'INSERT' OR NEW.name IS DISTINCT FROM OLD.name OR OLD.kind <> 'inbound') THEN
                PERFORM pg_notify('cloudmailin_routes', 'domain:' || NEW.name);
            END IF;
            RETURN NULL;
        END
        $$
    """)
    op.execute("""
        CREATE TRIGGER domains_route_changed AFTER INSERT OR UPDATE OR DELETE ON domains
        FOR EACH ROW EXECUTE FUNCTION cloudmailin_domain_route_changed()
    """)


def downgrade():
    op.execute("DROP TRIGGER domains_route_changed ON domains")
    op.execute("DROP FUNCTION cloudmailin_domain_route_changed()")
