"""Alembic's environment for avctl: run by `avctl.db.engine.migrate` on the connection it passes.

There is no alembic.ini: the caller sets ``script_location`` to this folder and hands over an open
connection (already holding the migration lock) in ``config.attributes["connection"]``.
"""

from __future__ import annotations

from alembic import context

from avctl.db.models import Base


def run_migrations() -> None:
    connection = context.config.attributes["connection"]
    # batch mode: SQLite cannot ALTER most things; later migrations get the copy-and-move for free
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if getattr(context, "config", None) is not None:  # run by Alembic; a plain import does nothing
    run_migrations()
