"""events webhook URL per resource; suppression list ordered by age

`resources.events_webhook_url_enc`: where a resource's delivery events are POSTed (encrypted
like the log drain URL, since the URL may carry credentials). The index serves the suppression
list's newest-first pages.

Revision ID: 0011_events_webhook
Revises: 0010
Create Date: 2026-12-01 10:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0011_events_webhook'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('resources', sa.Column('events_webhook_url_enc', sa.LargeBinary(), nullable=True))
    op.create_index('ix_suppressions_resource_created', 'suppressions', ['resource_id', 'created_at'],
                    unique=False)


def downgrade():
    op.drop_index('ix_suppressions_resource_created', table_name='suppressions')
    op.drop_column('resources', 'events_webhook_url_enc')
