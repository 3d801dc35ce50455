"""Who an MCP request acts as, and how the audit log names them.

Over stdio the client runs as the local operator (who started ``avctl mcp``): the audit log names it
``mcp:<client>``, the name the client gave itself in its initialize request. Over HTTP a server API
token acts as its user, with the user's role and sites: ``mcp:<user>/<client>``. The client's name
is chosen by the client: only letters, digits and ``. _ -`` are kept, at most 40 of them.
"""

from __future__ import annotations

import re
from typing import Any

from avctl.server.model import Principal

_NOT_NAME = re.compile(r"[^A-Za-z0-9._-]+")
MAX_CLIENT = 40
#: the ASGI scope key the HTTP transport's authentication stores its principal under
SCOPE_KEY = "avctl.mcp.principal"


def client_name(raw: Any) -> str:
    """A client's self-given name, safe for the audit log ("unknown" when it gave none usable)."""
    name = _NOT_NAME.sub("-", raw if isinstance(raw, str) else "").strip("-.")[:MAX_CLIENT].strip("-.")
    return name or "unknown"


def operator(client: str) -> Principal:
    """The local operator, through `client`: every role's rights (the start flags limit them)."""
    return Principal(user_id=0, user=client, role="admin", via="mcp")


def through(user: Principal, client: str) -> Principal:
    """A server user (their role and sites) acting through `client`."""
    return Principal(user_id=user.user_id, user=user.user, role=user.role, sites=user.sites, via="mcp",
                     client=client)
