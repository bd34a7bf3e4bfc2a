"""an address's S3-compatible store: bucket, prefix, region, endpoint, credentials, two switches

Revision ID: 0013_address_stores
Revises: 0012
Create Date: 2026-12-01 10:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0013_address_stores'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('addresses') as batch:
        batch.add_column(sa.Column('store_bucket', sa.String(length=63), nullable=True))
        batch.add_column(sa.Column('store_prefix', sa.String(length=512), nullable=True))
        batch.add_column(sa.Column('store_region', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('store_endpoint_url', sa.String(length=2048), nullable=True))
        batch.add_column(sa.Column('store_access_key_id_enc', sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column('store_secret_access_key_enc', sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column('store_attachments', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.add_column(sa.Column('store_messages', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade():
    with op.batch_alter_table('addresses') as batch:
        for name in ('store_messages', 'store_attachments', 'store_secret_access_key_enc',
                     'store_access_key_id_enc', 'store_endpoint_url', 'store_region', 'store_prefix',
                     'store_bucket'):
            batch.drop_column(name)
