#!/usr/bin/env python3
"""Generate the Poly UC parameter table (`src/avctl/emulator/polyuc/params.json`) from saved
copies of Poly's template configuration files.

    git -C MIRROR show COMMIT:configs/site.cfg > RAW/site.cfg   # ...one per template file
    .venv/bin/python scripts/gen_polyuc_params.py RAW --repository openspork/pp --commit COMMIT \\
        --under configs --committed 2019-05-08

Poly UC Software ships a folder of templates (`site.cfg`, `features.cfg`, `reg-advanced.cfg`,
`device.cfg`, `video.cfg`...), each an XML `polycomConfig` tree whose attributes are every
parameter of that area with its default. The script reads each `*.cfg` in RAW, collects every
attribute (name -> default), refuses a name two files give different defaults, and writes the
table with a provenance header: source repository, commit, paths with their SHA-256, what is known
of the software version, and the generation date. It never touches the network; the raw files stay
outside the repository (see the header's `raw_inputs`).

Types are facts only where the files show them. The templates carry no types, so the one type the
table records is `boolean` for a name ending in `.enable`/`.enabled` whose default is "0" or "1"
(Poly's on/off convention); everything else is untyped and the emulator accepts any string for it.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "src/avctl/emulator/polyuc/params.json"
BOOLEAN_SUFFIXES = ("enable", "enabled")


def read_template(path: Path) -> dict[str, str]:
    """Every parameter attribute of one template file, in document order."""
    found: dict[str, str] = {}
    for element in ET.parse(path).getroot().iter():
        for name, value in element.attrib.items():
            if name.startswith("{"):  # xsi:noNamespaceSchemaLocation and friends
                continue
            found[name] = value
    return found


def entry(name: str, default: str) -> dict[str, str]:
    item = {"default": default}
    if name.rsplit(".", 1)[-1] in BOOLEAN_SUFFIXES and default in ("0", "1"):
        item["type"] = "boolean"
    return item


def build(raw: Path, args: argparse.Namespace) -> dict[str, object]:
    files = sorted(raw.glob("*.cfg"))
    if not files:
        raise SystemExit(f"no *.cfg files in {raw}")
    params: dict[str, str] = {}
    origin: dict[str, str] = {}
    conflicts = []
    paths = []
    for path in files:
        rel = f"{args.under}/{path.name}" if args.under else path.name
        paths.append({"path": rel, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
        for name, value in read_template(path).items():
            if name in params and params[name] != value:
                conflicts.append(f"{name}: {origin[name]}={params[name]!r} vs {rel}={value!r}")
            params.setdefault(name, value)
            origin.setdefault(name, rel)
    if conflicts:
        raise SystemExit("templates disagree on defaults:\n" + "\n".join(conflicts))
    source = {
        "what": "Poly UC Software template configuration files (the 'Generated <file> Configuration File' "
                "templates Poly ships in the UC Software distribution), as copied into a public "
                "provisioning tool",
        "repository": args.repository,
        "commit": args.commit,
        "url": f"https://github.com/{args.repository}/tree/{args.commit}/{args.under}".rstrip("/"),
        "paths": paths,
        "software_version": args.version,
        "parameters": len(params),
    }
    return {
        "provenance": {
            "generated": args.date,
            "generator": "scripts/gen_polyuc_params.py",
            "sources": [source],
            "raw_inputs": f"not in this repository; get them with git -C <clone of {args.repository}> "
                          f"show {args.commit}:{args.under}/<file>",
            "defaults": "the template's value; the device.* templates leave most values empty (the phone "
                        "then keeps its own setting), so an empty device.* default is the template's, not "
                        "necessarily what a phone reports",
            "types": "boolean where a name ends in .enable/.enabled and its default is 0 or 1; no other "
                     "types, ranges or enumerations are in the templates",
        },
        "params": {name: entry(name, params[name]) for name in sorted(params)},
    }


def write(table: dict[str, object], out: Path) -> None:
    """One parameter a line: the file stays readable and its diffs small."""
    params = table["params"]
    assert isinstance(params, dict)
    lines = ['{"provenance": ' + json.dumps(table["provenance"], indent=1, ensure_ascii=False) + ",",
             ' "params": {']
    items = [f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in params.items()]
    lines.append(",\n".join(items))
    lines.append(" }}")
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw", type=Path, help="folder holding the saved *.cfg template files")
    parser.add_argument("--repository", required=True, help="owner/name the files were taken from")
    parser.add_argument("--commit", required=True, help="the commit they were read at")
    parser.add_argument("--under", default="", help="their folder inside that repository")
    parser.add_argument("--version", default="not stated in the files",
                        help="what is known of the UC Software version the templates belong to")
    parser.add_argument("--date", default=datetime.date.today().isoformat(), help="generation date")
    parser.add_argument("-o", "--out", type=Path, default=OUT)
    args = parser.parse_args()
    table = build(args.raw, args)
    write(table, args.out)
    params = table["params"]
    assert isinstance(params, dict)
    print(f"{len(params)} parameters -> {args.out} ({args.out.stat().st_size} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
