"""The expiry (``notAfter``) of an X.509 certificate in DER, read without a certificate library.

The poller reports every HTTPS device's certificate expiry. `cryptography` would parse it, but
loading it costs the poller ~7.6 MB of memory (its Rust extension) for one date per device; the
poller needs nothing else from it once its devices are pinned. This reads the DER just far enough:

    Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber INTEGER,
                                                         signature SEQUENCE, issuer SEQUENCE,
                                                         validity SEQUENCE { notBefore, notAfter }, ... },
                               ... }

The bytes come from a device: every length is checked against what encloses it, only definite
DER lengths of up to 4 bytes are accepted, and anything unexpected gives None (no expiry reported),
never an exception. The tests check it against `cryptography` on generated and damaged certificates.
"""

from __future__ import annotations

import datetime as dt
import re

_SEQUENCE, _INTEGER, _VERSION, _UTC_TIME, _GENERALIZED_TIME = 0x30, 0x02, 0xA0, 0x17, 0x18
_UTC = re.compile(rb"(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z")
_GENERALIZED = re.compile(rb"(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z")


class _Malformed(Exception):
    pass


def _element(der: bytes, at: int, end: int) -> tuple[int, int, int]:
    """The element at `at` (within `end`): (tag, start of its content, end of its content)."""
    if at + 2 > end:
        raise _Malformed
    tag, first = der[at], der[at + 1]
    at += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if not 1 <= count <= 4 or at + count > end:
            raise _Malformed  # indefinite lengths are not DER; longer ones are not a certificate
        length = int.from_bytes(der[at : at + count], "big")
        at += count
    if at + length > end:
        raise _Malformed
    return tag, at, at + length


def _time(tag: int, value: bytes) -> dt.datetime:
    if tag == _UTC_TIME and (m := _UTC.fullmatch(value)):
        yy = int(m.group(1))
        year = 1900 + yy if yy >= 50 else 2000 + yy  # RFC 5280, 4.1.2.5.1
        rest = m.groups()[1:]
    elif tag == _GENERALIZED_TIME and (m := _GENERALIZED.fullmatch(value)):
        year, rest = int(m.group(1)), m.groups()[1:]
    else:
        raise _Malformed
    month, day, hour, minute, second = (int(v) for v in rest)
    try:
        return dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)
    except ValueError:  # month 13, February 30th...
        raise _Malformed from None


def not_after(der: bytes) -> dt.datetime | None:
    """The certificate's ``notAfter`` (UTC), or None if `der` is not a certificate read this far."""
    try:
        tag, start, end = _element(der, 0, len(der))
        if tag != _SEQUENCE or end != len(der):
            return None
        tag, at, tbs_end = _element(der, start, end)
        if tag != _SEQUENCE:
            return None
        tag, content, after = _element(der, at, tbs_end)
        if tag == _VERSION:
            tag, content, after = _element(der, after, tbs_end)
        if tag != _INTEGER:  # the serial number
            return None
        for _ in ("signature", "issuer"):
            tag, content, after = _element(der, after, tbs_end)
            if tag != _SEQUENCE:
                return None
        tag, content, validity_end = _element(der, after, tbs_end)
        if tag != _SEQUENCE:
            return None
        _tag, _start, before_end = _element(der, content, validity_end)  # notBefore
        tag, start, end = _element(der, before_end, validity_end)
        if end != validity_end:
            return None
        return _time(tag, der[start:end])
    except _Malformed:
        return None
