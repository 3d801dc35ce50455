"""The poller's certificate expiry reader (`avctl.server.poll.validity`) against `cryptography`:
the same notAfter on generated certificates (RSA and EC keys, UTCTime and GeneralizedTime, with and
without a version field), and None, never an exception, on every damaged form of one."""

from __future__ import annotations

import datetime as dt
import random
import subprocess
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from avctl.emulator.certs import make_certificate
from avctl.server.poll.validity import not_after


def certificate(not_before: dt.datetime, not_valid_after: dt.datetime, *, key: str = "ec",
                version: x509.Version = x509.Version.v3) -> bytes:
    private = ec.generate_private_key(ec.SECP256R1()) if key == "ec" else rsa.generate_private_key(65537, 2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "room-1.example"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "a" * 300)])  # long lengths
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(not_before)
               .not_valid_after(not_valid_after))
    if version is x509.Version.v3:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName("room-1.example")]), critical=False)
    cert = builder.sign(private, hashes.SHA256())
    der = cert.public_bytes(serialization.Encoding.DER)
    if version is x509.Version.v1:
        der = _without_version(der)
    return der


def _without_version(der: bytes) -> bytes:
    """A v1 certificate: the same DER without the optional [0] version field (lengths fixed up)."""
    def tlv(tag: int, body: bytes) -> bytes:
        n, width = len(body), (len(body).bit_length() + 7) // 8
        size = bytes([n]) if n < 0x80 else bytes([0x80 | width]) + n.to_bytes(width, "big")
        return bytes([tag]) + size + body

    def split(data: bytes) -> tuple[int, bytes, bytes]:
        tag, first = data[0], data[1]
        at, length = 2, first
        if first >= 0x80:
            count = first & 0x7F
            length, at = int.from_bytes(data[2 : 2 + count], "big"), 2 + count
        return tag, data[at : at + length], data[at + length :]

    _tag, cert_body, _ = split(der)
    _tag, tbs_body, rest = split(cert_body)
    _tag, _version, tbs_rest = split(tbs_body)
    return tlv(0x30, tlv(0x30, tbs_rest) + rest)


NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(("after", "key", "version"), [
    (NOW + dt.timedelta(days=397), "ec", x509.Version.v3),          # UTCTime
    (NOW - dt.timedelta(days=3), "rsa", x509.Version.v3),           # expired
    (dt.datetime(2049, 12, 31, 23, 59, 59, tzinfo=dt.UTC), "ec", x509.Version.v3),  # the last UTCTime year
    (dt.datetime(2050, 1, 1, 0, 0, 1, tzinfo=dt.UTC), "rsa", x509.Version.v3),      # GeneralizedTime
    (dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC), "ec", x509.Version.v3),  # "no expiry" (RFC 5280)
    (NOW + dt.timedelta(days=30), "ec", x509.Version.v1),           # no version field
])
def test_the_same_expiry_as_cryptography(after: dt.datetime, key: str, version: x509.Version) -> None:
    der = certificate(NOW - dt.timedelta(days=400), after, key=key, version=version)
    expected = x509.load_der_x509_certificate(der).not_valid_after_utc
    assert expected == after.replace(microsecond=0)
    assert not_after(der) == expected


def test_the_emulators_certificates() -> None:
    cert_pem, _key = make_certificate("127.0.0.1", "emulated")
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    assert not_after(der) == x509.load_der_x509_certificate(der).not_valid_after_utc


def test_damaged_certificates_give_none_never_an_exception() -> None:
    der = certificate(NOW, NOW + dt.timedelta(days=90))
    assert not_after(der) is not None
    for cut in range(len(der)):  # every truncation: the outer length no longer fits
        assert not_after(der[:cut]) is None
    assert not_after(der + b"\x00") is None  # trailing bytes: not one certificate
    rng = random.Random(7)
    expected = not_after(der)
    for _ in range(3000):  # flipped bytes: a date, the same one or None; never an exception
        damaged = bytearray(der)
        for _flip in range(rng.randint(1, 3)):
            damaged[rng.randrange(min(len(der), 600))] = rng.randrange(256)
        got = not_after(bytes(damaged))
        assert got is None or isinstance(got, dt.datetime)
    # hostile lengths: indefinite, 5-byte, longer than the data
    for head in (b"\x30\x80", b"\x30\x85\x00\x00\x00\x00\x10", b"\x30\x84\xff\xff\xff\xff", b"\x30", b""):
        assert not_after(head + der[4:]) is None
    # a valid structure with an impossible date (month 13)
    bad = der.replace(expected.strftime("%y%m%d").encode(), b"991301", 1) if expected else der
    assert not_after(bad) is None
    for text in (b"", b"\x17\x0d" + b"2612311200Z  ", b"\x18\x0f" + b"20261231120000+0100"):
        assert not_after(text) is None


def test_the_poller_reports_expiry_without_loading_cryptography() -> None:
    """A poll's certificate readings and the three families leave the 7.6 MB `cryptography`
    extension unloaded (the reason this reader exists; the old code loaded it on the first HTTPS
    poll, and PyJWT, which the Solstice family used for its token's expiry, at the start)."""
    der = certificate(NOW - dt.timedelta(days=10), NOW + dt.timedelta(days=20))
    code = ("import sys; from avctl.server.poll.process import child_entry; "
            "from avctl.server.poll.health import CertificateExpiry; "
            "from avctl.families import builtin_spec; "
            "[builtin_spec(f) for f in ('videoos', 'polyuc', 'solstice')]; "  # what the engine loads
            "print(CertificateExpiry().readings(bytes.fromhex(sys.argv[1]), float(sys.argv[2]))); "
            "print(sorted(m for m in sys.modules if m.startswith('cryptography')))")
    done = subprocess.run([sys.executable, "-c", code, der.hex(), str(NOW.timestamp())], capture_output=True,
                          text=True, timeout=60, check=True)
    readings, modules = done.stdout.strip().splitlines()
    assert readings == "{'cert_days_left': 20.0, 'cert_expires': '2026-12-20'}"
    assert modules == "[]"
