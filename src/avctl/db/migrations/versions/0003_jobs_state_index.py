"""An index on the jobs' state: the server looks for running jobs every few seconds (jobs started by
other processes are followed live), and without it that look reads every job ever run.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("jobs_state", "jobs", ["state"])


def downgrade() -> None:
    op.drop_index("jobs_state", table_name="jobs")
