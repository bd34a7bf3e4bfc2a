"""history: trigram indexes for the dashboard's substring searches, and the outbound chart's index

The inbound history's `subject` and `to` searches are ILIKE '%...%' (services/history.py): over a
long history a rare term walked the whole date range row by row (2 s over a million rows,
bench/dashboard.py). pg_trgm's GIN indexes answer them from the index: `subject` directly, `to`
through `inbound_recipients_text(envelope_to, recipients)`, the row's envelope.to and every
recipient as one text, one a line (IMMUTABLE, so an index can hold it; `array_to_string` alone is
only STABLE). `outbound_recipients (resource_id, state, updated_at)` serves the overview's
delivered/bounced per day, which scanned the table.

pg_trgm ships with PostgreSQL (contrib) and Heroku Postgres allows it; `CREATE EXTENSION IF NOT
EXISTS` needs no superuser there.

Revision ID: 0017_history_search_indexes
Revises: 0016_history_stored_message
Create Date: 2026-12-01 12:40:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0017_history_search_indexes'
down_revision = '0016_history_stored_message'
branch_labels = None
depends_on = None


def upgrade():
    op.execute('CREATE EXTENSION IF NOT EXISTS pg_trgm')
    op.execute(
        "CREATE FUNCTION inbound_recipients_text(envelope_to text, recipients text[]) RETURNS text "
        "LANGUAGE sql IMMUTABLE PARALLEL SAFE "
        "AS $$ SELECT envelope_to || chr(10) || array_to_string(recipients, chr(10)) $$"
    )
    op.create_index(
        'ix_inbound_messages_subject_trgm', 'inbound_messages', ['subject'],
        postgresql_using='gin', postgresql_ops={'subject': 'gin_trgm_ops'},
    )
    op.create_index(
        'ix_inbound_messages_to_trgm', 'inbound_messages',
        [sa.func.inbound_recipients_text(sa.column('envelope_to'), sa.column('recipients'))
         .label('recipients_text')],
        postgresql_using='gin', postgresql_ops={'recipients_text': 'gin_trgm_ops'},
    )
    op.create_index(
        'ix_outbound_recipients_resource_state_updated', 'outbound_recipients',
        ['resource_id', 'state', 'updated_at'],
    )


def downgrade():
    op.drop_index('ix_outbound_recipients_resource_state_updated', table_name='outbound_recipients')
    op.drop_index('ix_inbound_messages_to_trgm', table_name='inbound_messages')
    op.drop_index('ix_inbound_messages_subject_trgm', table_name='inbound_messages')
    op.execute('DROP FUNCTION inbound_recipients_text(text, text[])')
