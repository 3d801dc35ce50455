"""Self-signed certificates for emulated devices, one per device, as real devices have.

EC P-256 keys: generating one takes about a millisecond, so a thousand devices start quickly, and
the handshakes cost the client less than RSA would.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import tempfile
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def make_certificate(host: str, common_name: str, *, names: Sequence[str] | None = None,
                     not_before: dt.datetime | None = None,
                     not_after: dt.datetime | None = None) -> tuple[bytes, bytes]:
    """(certificate PEM, private key PEM) valid for `host` (an IP or a name).

    Tests of odd certificates: `names` replaces the subject alternative names (a certificate for
    another device), `not_before`/`not_after` the validity (an expired or not yet valid one).
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])
    sans: list[x509.GeneralName] = []
    for entry in names if names is not None else [host]:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(entry)))
        except ValueError:
            sans.append(x509.DNSName(entry))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - dt.timedelta(days=1))
        .not_valid_after(not_after or now + dt.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(key, hashes.SHA256())
    )
    return (
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


def server_context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    """An SSL server context from PEM bytes (ssl wants files, so they live only for the load)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    fd, path = tempfile.mkstemp(suffix=".pem")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(cert_pem + key_pem)
        ctx.load_cert_chain(path)
    finally:
        os.unlink(path)
    return ctx
