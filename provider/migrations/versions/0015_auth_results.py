"""DKIM and DMARC results in the inbound history

`inbound_messages.dkim_result` (none, pass, fail, neutral, temperror, permerror: pass when any
signature passed) and `dmarc_result` (none, pass, fail, temperror, permerror), filterable in
`incoming_statuses`. NULL for rows written before this and for refusals before DATA.

Revision ID: 0015_auth_results
Revises: 0014_domain_routes
Create Date: 2026-12-01 10:20:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0015_auth_results'
down_revision = '0014_domain_routes'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('inbound_messages', sa.Column('dkim_result', sa.String(length=16), nullable=True))
    op.add_column('inbound_messages', sa.Column('dmarc_result', sa.String(length=16), nullable=True))


def downgrade():
    op.drop_column('inbound_messages', 'dmarc_result')
    op.drop_column('inbound_messages', 'dkim_result')
