"""Fetch the dashboard's JavaScript and CSS libraries from the npm registry into the package.

The files listed in src/avctl/server/web/static/vendor/VENDORED.json are taken from the named
npm package versions (`npm pack`, no install scripts run) with their licences. ``--check`` fetches
them again and compares with what is committed (exit 1 on a difference); without it, the files are
written and the manifest's sha256 updated. tests/web/test_vendored.py checks the committed files
against the manifest offline.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VENDOR = Path(__file__).resolve().parent.parent / "src/avctl/server/web/static/vendor"
MANIFEST = VENDOR / "VENDORED.json"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch(package: str, version: str, workdir: Path) -> tarfile.TarFile:
    done = subprocess.run(["npm", "pack", f"{package}@{version}", "--silent", "--pack-destination", str(workdir)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"npm pack {package}@{version} failed: {done.stderr.strip()}")
    return tarfile.open(workdir / done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the registry, change nothing")
    args = parser.parse_args()
    manifest = json.loads(MANIFEST.read_text())
    differ = []
    with tempfile.TemporaryDirectory() as tmp:
        for lib in manifest["libraries"]:
            with fetch(lib["package"], lib["version"], Path(tmp)) as tar:
                for item in lib["files"]:
                    member = tar.extractfile(f"package/{item['from']}")
                    if member is None:
                        sys.exit(f"{lib['package']}@{lib['version']} has no {item['from']}")
                    data = member.read()
                    target = VENDOR / item["to"]
                    if args.check:
                        if not target.exists() or target.read_bytes() != data:
                            differ.append(item["to"])
                    else:
                        target.write_bytes(data)
                        item["sha256"] = sha256(data)
    if args.check:
        print("differ from the registry: " + ", ".join(differ) if differ else "vendored files match the registry")
        return 1 if differ else 0
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {sum(len(lib['files']) for lib in manifest['libraries'])} files and {MANIFEST.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
