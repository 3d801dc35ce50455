"""Real files the emulated VideoOS system hands out: JPEG snapshots, tar log archives, ZIP content
bundles, and the directory as XML (export and import).

The JPEG writer is a minimal baseline encoder (grayscale, one flat shade per 8x8 block, so only DC
coefficients are coded): enough for a real, decodable picture that changes with the camera's
position, without an imaging library.
"""

from __future__ import annotations

import io
import struct
import tarfile
import time
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterable, Sequence
from typing import Any

# --- JPEG -------------------------------------------------------------------------------------

# Standard luminance DC table (ITU T.81 Annex K.3): code lengths 1..16 and symbols (categories).
_DC_BITS = (0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0)
_DC_VALUES = tuple(range(12))
# AC table with a single symbol: EOB (0x00), code "0". Every block has only its DC coefficient.
_AC_BITS = (1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
_AC_VALUES = (0,)
# Quantiser 8 for DC makes the coded DC value equal to (shade - 128); AC quantisers are irrelevant.
_QUANT = bytes([8] + [1] * 63)


def _huffman_codes(bits: Sequence[int], values: Sequence[int]) -> dict[int, tuple[int, int]]:
    """Canonical Huffman codes (T.81 Annex C): symbol -> (code, length)."""
    codes: dict[int, tuple[int, int]] = {}
    code = 0
    k = 0
    for length, count in enumerate(bits, start=1):
        for _ in range(count):
            codes[values[k]] = (code, length)
            code += 1
            k += 1
        code <<= 1
    return codes


_DC_CODES = _huffman_codes(_DC_BITS, _DC_VALUES)
_EOB = _huffman_codes(_AC_BITS, _AC_VALUES)[0]


class _BitWriter:
    def __init__(self) -> None:
        self.out = bytearray()
        self.acc = 0
        self.n = 0

    def write(self, code: int, length: int) -> None:
        for i in range(length - 1, -1, -1):
            self.acc = (self.acc << 1) | ((code >> i) & 1)
            self.n += 1
            if self.n == 8:
                self.out.append(self.acc)
                if self.acc == 0xFF:
                    self.out.append(0)  # byte stuffing
                self.acc = self.n = 0

    def flush(self) -> bytes:
        if self.n:
            self.write((1 << (8 - self.n)) - 1, 8 - self.n)  # pad with 1-bits
        return bytes(self.out)


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">HH", 0xFF00 | marker, len(payload) + 2) + payload


def encode_jpeg(shades: Sequence[Sequence[int]]) -> bytes:
    """A baseline grayscale JPEG; `shades[row][col]` (0..255) is the shade of each 8x8 block."""
    rows, cols = len(shades), len(shades[0])
    bits = _BitWriter()
    previous = 0
    for row in shades:
        for shade in row:
            dc = max(0, min(255, int(shade))) - 128
            diff = dc - previous
            previous = dc
            category = abs(diff).bit_length()
            bits.write(*_DC_CODES[category])
            if category:
                bits.write(diff if diff > 0 else diff + (1 << category) - 1, category)
            bits.write(*_EOB)
    dht = bytes([0x00, *_DC_BITS, *_DC_VALUES]) + bytes([0x10, *_AC_BITS, *_AC_VALUES])
    return b"".join(
        [
            b"\xff\xd8",
            _segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"),
            _segment(0xDB, b"\x00" + _QUANT),
            _segment(0xC0, struct.pack(">BHHB", 8, rows * 8, cols * 8, 1) + b"\x01\x11\x00"),
            _segment(0xC4, dht),
            _segment(0xDA, b"\x01\x01\x00\x00\x3f\x00"),
            bits.flush(),
            b"\xff\xd9",
        ]
    )


def camera_picture(
    pan: int, tilt: int, zoom: int, *, base: int = 60, cols: int = 20, rows: int = 15
) -> bytes:
    """A snapshot: a shaded background with a bright square placed by pan/tilt and sized by zoom."""
    size = 2 + (zoom + 50000) * 4 // 100000  # 2..6 blocks
    cx = (pan + 50000) * (cols - 1) // 100000
    cy = (50000 - tilt) * (rows - 1) // 100000
    shades = [
        [
            230 if abs(c - cx) * 2 < size and abs(r - cy) * 2 < size else base + (r * 4 + c * 2) % 60
            for c in range(cols)
        ]
        for r in range(rows)
    ]
    return encode_jpeg(shades)


# --- archives ---------------------------------------------------------------------------------


def tar_archive(files: dict[str, str | bytes]) -> bytes:
    """A .tar (uncompressed, as the device sends) of name -> content."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = int(time.time())
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def zip_archive(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


# --- directory XML ----------------------------------------------------------------------------
# The reference names no format for /rest/directory/export and /import; this one is the emulator's
# own: every writable field of an entry, its devices and addresses, and group members by id.

TEXT_FIELDS = (
    "displayName",
    "firstName",
    "lastName",
    "fullName",
    "email",
    "homePhone",
    "workPhone",
    "mobilePhone",
    "imageLocation",
)


def directory_xml(entries: Iterable[dict[str, Any]]) -> bytes:
    root = ET.Element("directory", version="1")
    for entry in entries:
        el = ET.SubElement(
            root,
            "entry",
            id=str(entry["id"]),
            type=str(entry.get("type", "SINGLE")),
            favorite="true" if entry.get("favorite") else "false",
        )
        for name in TEXT_FIELDS:
            if entry.get(name):
                ET.SubElement(el, name).text = str(entry[name])
        for device in entry.get("devices") or []:
            dev = ET.SubElement(el, "device", name=str(device.get("name", "")))
            for address in device.get("addressList") or []:
                ET.SubElement(dev, "address", {k: str(v) for k, v in address.items() if v is not None})
        for member in entry.get("members") or []:
            ET.SubElement(el, "member", id=str(member))
    ET.indent(root)
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return body + b"\n"


def parse_directory_xml(data: bytes) -> list[dict[str, Any]]:
    """Entries from `directory_xml` output; ValueError when the document is not such a directory."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise ValueError(f"not XML: {exc}") from None
    if root.tag != "directory":
        raise ValueError(f"root element is <{root.tag}>, expected <directory>")
    entries = []
    for el in root.findall("entry"):
        entry: dict[str, Any] = {
            "id": el.get("id") or "",
            "type": el.get("type", "SINGLE"),
            "favorite": el.get("favorite") == "true",
        }
        if entry["type"] not in ("SINGLE", "GROUP"):
            raise ValueError(f"entry type {entry['type']!r} is not SINGLE or GROUP")
        for name in TEXT_FIELDS:
            child = el.find(name)
            if child is not None and child.text:
                entry[name] = child.text
        entry["devices"] = [
            {"name": dev.get("name", ""), "addressList": [dict(a.attrib) for a in dev.findall("address")]}
            for dev in el.findall("device")
        ]
        entry["members"] = [m.get("id", "") for m in el.findall("member") if m.get("id")]
        entries.append(entry)
    return entries
