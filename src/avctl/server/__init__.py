"""avctl server: a long-running fleet service over the same specs, inventory and runner as the CLI.

The data flow (docs/server.md)::

    inventory -> executor (poll: avctl.server.poll | jobs: avctl.server.jobs)
              -> observations -> state (avctl.server.state) -> database (avctl.db)
              -> alerts (avctl.server.alerts) -> notifications (outbox)
    database  -> service functions (avctl.server.service) -> REST API (avctl.server.api), metrics,
              and later the dashboard and the agent interface
    users, sessions, tokens, roles: avctl.server.access

``avctl.server.model`` holds the few types every part shares.
"""
