"""The web dashboard: server-rendered pages (Jinja2) with htmx for partial updates, served by the
same process and behind the same users, roles, sessions and CSRF tokens as the REST API."""

from avctl.server.web.app import mount_web

__all__ = ["mount_web"]
