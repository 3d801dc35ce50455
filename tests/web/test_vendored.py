"""The dashboard's third-party files are what the manifest says: pinned npm versions, with licences."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import avctl.server.web

VENDOR = Path(avctl.server.web.__file__).parent / "static" / "vendor"


def test_vendored_files_match_manifest_and_carry_licences() -> None:
    manifest = json.loads((VENDOR / "VENDORED.json").read_text())
    listed = set()
    for lib in manifest["libraries"]:
        assert lib["version"][0].isdigit() and lib["license"], lib
        names = [f["to"] for f in lib["files"]]
        assert any(n.endswith("LICENSE") for n in names), f"{lib['package']} has no licence file"
        for item in lib["files"]:
            data = (VENDOR / item["to"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == item["sha256"], f"{item['to']} differs from the manifest"
            listed.add(item["to"])
    on_disk = {p.name for p in VENDOR.iterdir()} - {"VENDORED.json"}
    assert on_disk == listed, f"files not in the manifest: {sorted(on_disk - listed)}"
