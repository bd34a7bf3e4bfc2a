"""outbound messages, recipients, events and suppressions

Revision ID: 0010
Revises: 0003_credential_key
Create Date: 2026-12-01 09:30:00

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0010'
down_revision = '0003_credential_key'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'outbound_messages',
        sa.Column('id', sa.UUID(), nullable=False),
        sa.Column('resource_id', sa.String(length=36), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('source', sa.String(length=8), nullable=False),
        sa.Column('sender', sa.Text(), nullable=False),
        sa.Column('sender_domain', sa.String(length=255), nullable=False),
        sa.Column('to', postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column('cc', postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column('subject', sa.Text(), nullable=True),
        sa.Column('message_id_header', sa.Text(), nullable=True),
        sa.Column('tags', postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column('priority', sa.String(length=16), nullable=False),
        sa.Column('test_mode', sa.Boolean(), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('raw', sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(['resource_id'], ['resources.id'],
                                name=op.f('fk_outbound_messages_resource_id_resources'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_outbound_messages')),
    )
    op.create_index('ix_outbound_messages_resource_created', 'outbound_messages',
                    ['resource_id', 'created_at'], unique=False)
    op.create_table(
        'outbound_recipients',
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('message_id', sa.UUID(), nullable=False),
        sa.Column('resource_id', sa.String(length=36), nullable=False),
        sa.Column('address', sa.Text(), nullable=False),
        sa.Column('domain', sa.String(length=255), nullable=False),
        sa.Column('state', sa.String(length=24), nullable=False),
        sa.Column('priority_rank', sa.SmallInteger(), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_reply', sa.Text(), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['message_id'], ['outbound_messages.id'],
                                name=op.f('fk_outbound_recipients_message_id_outbound_messages'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['resource_id'], ['resources.id'],
                                name=op.f('fk_outbound_recipients_resource_id_resources'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_outbound_recipients')),
        sa.UniqueConstraint('message_id', 'address', name='uq_outbound_recipients_message_address'),
    )
    op.create_index(op.f('ix_outbound_recipients_message_id'), 'outbound_recipients', ['message_id'],
                    unique=False)
    op.create_index('ix_outbound_recipients_resource_address', 'outbound_recipients',
                    ['resource_id', 'address'], unique=False)
    op.create_index('ix_outbound_recipients_due', 'outbound_recipients', ['priority_rank', 'next_attempt_at'],
                    unique=False,
                    postgresql_where="state IN ('queued', 'deferred')")
    op.create_table(
        'outbound_events',
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('recipient_id', sa.BigInteger(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('state', sa.String(length=24), nullable=False),
        sa.Column('reply', sa.Text(), nullable=True),
        sa.Column('mx', sa.String(length=255), nullable=True),
        sa.Column('webhook_pending', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['recipient_id'], ['outbound_recipients.id'],
                                name=op.f('fk_outbound_events_recipient_id_outbound_recipients'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_outbound_events')),
    )
    op.create_index(op.f('ix_outbound_events_recipient_id'), 'outbound_events', ['recipient_id'], unique=False)
    op.create_index('ix_outbound_events_webhook_pending', 'outbound_events', ['id'], unique=False,
                    postgresql_where='webhook_pending')
    op.create_table(
        'suppressions',
        sa.Column('resource_id', sa.String(length=36), nullable=False),
        sa.Column('address', sa.Text(), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['resource_id'], ['resources.id'],
                                name=op.f('fk_suppressions_resource_id_resources'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('resource_id', 'address', name=op.f('pk_suppressions')),
    )


def downgrade():
    op.drop_table('suppressions')
    op.drop_table('outbound_events')
    op.drop_table('outbound_recipients')
    op.drop_table('outbound_messages')
