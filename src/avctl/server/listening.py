"""Running a uvicorn server as one of avctl's front ends (`avctl serve`, `avctl mcp --listen`)."""

from __future__ import annotations

import uvicorn

from avctl.errors import UsageError


async def serve_until_stopped(server: uvicorn.Server, where: str) -> None:
    """``server.serve()``, with uvicorn's failure to start (the port is taken, no such address: it
    logs the reason and exits) turned into one error line naming the address and the fix."""
    try:
        await server.serve()
    except SystemExit:
        raise UsageError(f"cannot listen on {where} (the line above says why)",
                         hint="is the port taken? choose another with --listen") from None
