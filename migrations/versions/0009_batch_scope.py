"""api tokens: the new `batch` scope for the tokens that could already run batches

Files and batches took any API token before; now they take the `batch` scope.
A token with `embed` or `generate` could create batches, so it gets `batch` and its
scripts keep working. A token with neither (only `usage`) never could, and does not.
Downgrading takes `batch` away from every token again.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 02:00:00

"""
from collections import defaultdict
from collections.abc import Callable

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

tokens = sa.table('api_tokens', sa.column('id', sa.Integer()), sa.column('scopes', sa.JSON()))
BATCH_CREATING = {'embed', 'generate'}


def _rescope(change: Callable[[set[str]], set[str]]) -> None:
    """Give each token the scopes `change` makes of its own, one UPDATE per new scope list."""
    connection = op.get_bind()
    changed: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for token_id, scopes in connection.execute(sa.select(tokens.c.id, tokens.c.scopes)):
        new = change(set(scopes))
        if new != set(scopes):
            changed[tuple(sorted(new))].append(token_id)
    for scopes, ids in changed.items():
        for start in range(0, len(ids), 1000):
            connection.execute(
                tokens.update()
                .where(tokens.c.id.in_(ids[start:start + 1000]))
                .values(scopes=list(scopes))
            )


def upgrade():
    _rescope(lambda scopes: scopes | {'batch'} if scopes & BATCH_CREATING else scopes)


def downgrade():
    _rescope(lambda scopes: scopes - {'batch'})
