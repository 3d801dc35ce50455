"""Skip loading the system CA store that aiohttp builds into its default SSL contexts at import.

aiohttp creates two default SSL contexts when it is imported, each loading the system CA bundle
(about 100 ms of every `avctl call`). avctl never uses them: a pinned device gets aiohttp's
unverified context plus a fingerprint check, `--ca-bundle` its own context with only that bundle,
`--insecure` none. So when the avctl command line owns the process (`CLI_OWNS_PROCESS`, set by
`avctl.cli.main.main`), aiohttp is imported with `SSL_CERT_FILE` pointing at an empty file, and the
variable is put back as it was right after (a `SSL_CERT_FILE` of the user's is restored: the only
contexts built meanwhile are those two, which avctl does not use). A library user's process is left
alone: their own aiohttp sessions keep the system CAs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

#: set by the `avctl` command line before it dispatches a command
CLI_OWNS_PROCESS = False


@contextlib.contextmanager
def skipping_default_cas() -> Iterator[None]:
    if not CLI_OWNS_PROCESS:
        yield
        return
    before = os.environ.get("SSL_CERT_FILE")
    os.environ["SSL_CERT_FILE"] = os.devnull
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("SSL_CERT_FILE", None)
        else:
            os.environ["SSL_CERT_FILE"] = before
