"""aiohttp for the client side, imported once through `avctl.transport.cas` (see there why)."""

from avctl.transport.cas import skipping_default_cas

with skipping_default_cas():
    import aiohttp

__all__ = ["aiohttp"]
