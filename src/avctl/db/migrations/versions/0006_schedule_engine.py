"""Schedules run by Temporal (issue 17): which engine fires a schedule.

``local``: the CLI's ``schedule run-due`` and the server's schedule loop fire it, as before;
``temporal``: Temporal Schedules do (one per time zone), and the local schedulers leave it alone.
``site_critical``: a Temporal schedule its sites' workers also run on their own while they cannot
reach Temporal (a WAN outage), reported afterwards.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("schedules") as batch:
        batch.add_column(sa.Column("engine", sa.String(length=16), nullable=False, server_default="local"))
        batch.add_column(sa.Column("site_critical", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("schedules") as batch:
        batch.drop_column("site_critical")
        batch.drop_column("engine")
