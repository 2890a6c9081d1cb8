"""usage: the units a handler model's call used (images, items ...), beside its tokens

Handler models (issue 26) meter what their handler declares as `units`; each
usage row keeps the count. Rows of other endpoints keep 0. The new `predict`
token scope needs no migration: existing tokens do not get it.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 04:10:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('inference_records') as batch_op:
        batch_op.add_column(sa.Column('units', sa.Integer(), nullable=False, server_default='0'))


def downgrade():
    with op.batch_alter_table('inference_records') as batch_op:
        batch_op.drop_column('units')
