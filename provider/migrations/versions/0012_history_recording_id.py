"""history recording id

The SMTP edge gives every recording (history row plus its count) an id before it tries to
commit it. A batch whose COMMIT failed has an unknown outcome, and a recording kept in the
edge's spool through a database outage may also have been committed before the edge stopped;
both are written again with `ON CONFLICT (recording_id) DO NOTHING`, and only the rows that
were inserted are counted, so each recording is one row and one count (smtp_edge/spool.py).
Rows written elsewhere (and all rows before this revision) have none; NULLs never conflict.

Revision ID: 0012
Revises: 0011_events_webhook
Create Date: 2026-12-01 09:30:00

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0012'
down_revision = '0011_events_webhook'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('recording_id', postgresql.UUID(as_uuid=True), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f('uq_inbound_messages_recording_id'), ['recording_id']
        )


def downgrade():
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_inbound_messages_recording_id'), type_='unique')
        batch_op.drop_column('recording_id')
