"""The agent interface: ``avctl mcp``, a Model Context Protocol server over the fleet (docs/agents.md).

It sits between the command line and the server: its tools call the server's service functions
(``avctl.server.service``) with a `Principal`, exactly as the REST API does, and never reach a
device itself.
"""
