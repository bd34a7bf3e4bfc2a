"""history: where the message store kept the message, the HELO name, and re-sends' link to their first

`stored_message_key` is the object key the SMTP edge wrote the raw message under (the address's
message store; NULL when it stored nothing), so `POST .../incoming_messages/<id>/resend` can fetch
it again. `helo_domain` completes the envelope a re-send renders (the rest of it is already kept).
`resent_from_id` links a re-send's row to the row it re-sends; SET NULL, so the retention sweep
purges an original before its re-sends without a dangling link, and a partial index serves that
SET NULL (a self-referencing key without one would scan the table for every purged row).

Revision ID: 0016_history_stored_message
Revises: 0015_auth_results
Create Date: 2026-12-01 11:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0016_history_stored_message'
down_revision = '0015_auth_results'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('inbound_messages') as batch:
        batch.add_column(sa.Column('stored_message_key', sa.Text(), nullable=True))
        batch.add_column(sa.Column('helo_domain', sa.Text(), nullable=True))
        batch.add_column(sa.Column('resent_from_id', sa.BigInteger(), nullable=True))
        batch.create_foreign_key(
            'fk_inbound_messages_resent_from_id', 'inbound_messages', ['resent_from_id'], ['id'],
            ondelete='SET NULL',
        )
    op.create_index(
        'ix_inbound_messages_resent_from_id', 'inbound_messages', ['resent_from_id'],
        postgresql_where=sa.text('resent_from_id IS NOT NULL'),
    )


def downgrade():
    op.drop_index('ix_inbound_messages_resent_from_id', table_name='inbound_messages')
    with op.batch_alter_table('inbound_messages') as batch:
        batch.drop_constraint('fk_inbound_messages_resent_from_id', type_='foreignkey')
        batch.drop_column('resent_from_id')
        batch.drop_column('helo_domain')
        batch.drop_column('stored_message_key')
