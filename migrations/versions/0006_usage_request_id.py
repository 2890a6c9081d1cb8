"""usage rows carry a request id, so a replayed bulk write inserts nothing twice

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 18:45:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('inference_records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('request_id', sa.String(length=32), nullable=True))
        batch_op.create_index('ix_inference_records_request_id', ['request_id'], unique=True)


def downgrade():
    with op.batch_alter_table('inference_records', schema=None) as batch_op:
        batch_op.drop_index('ix_inference_records_request_id')
        batch_op.drop_column('request_id')
