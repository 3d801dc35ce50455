"""The server's own HTTPS: a certificate the user gives, or a self-signed one made on first start.

Plain HTTP is served only on a loopback address (a reverse proxy on the same host terminates TLS)
or when asked for by name (``--insecure-http``): browser sessions and API tokens must not cross a
network in clear.

The self-signed certificate and its key live in ``$AVCTL_HOME/server/`` (key 0600), are valid for
the listen address, ``localhost`` and ``127.0.0.1``, and are reused on every start so that
browsers and API clients can pin them; the start-up line shows its SHA-256 fingerprint.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from avctl.errors import UsageError
from avctl.paths import avctl_home, ensure_private_dir, open_private
from avctl.transport.tls import fingerprint

#: how long a generated certificate is valid; regenerated when less than a month is left
SELF_SIGNED_DAYS = 825
RENEW_BEFORE = dt.timedelta(days=30)

if TYPE_CHECKING:
    from cryptography import x509


@dataclass(frozen=True)
class ServerTLS:
    """What uvicorn needs to serve HTTPS, and what to tell the user about it."""

    certfile: Path
    keyfile: Path
    fingerprint: str
    self_signed: bool


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_plain_http(host: str, insecure_http: bool) -> None:
    """Refuse plain HTTP beyond loopback unless asked for by name."""
    if not insecure_http and not is_loopback(host):
        raise UsageError(f"plain HTTP on {host} would send passwords, sessions and tokens in clear",
                         hint="serve HTTPS (the default), listen on 127.0.0.1 behind a TLS reverse proxy, "
                              "or pass --insecure-http if you really mean it")


def user_tls(certfile: str, keyfile: str) -> ServerTLS:
    """The user's certificate and key, checked now (a bad pair fails at start, not at the first client)."""
    cert, key = Path(certfile), Path(keyfile)
    for what, path in (("certificate", cert), ("key", key)):
        if not path.is_file():
            raise UsageError(f"TLS {what} file not found: {path}", hint="give --tls-cert and --tls-key")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise UsageError(f"cannot use TLS certificate {cert} with key {key}: {exc}",
                         hint="both must be PEM; the key must belong to the certificate") from None
    der = ssl.PEM_cert_to_DER_cert(cert.read_text(encoding="ascii", errors="replace").split(
        "-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n")
    return ServerTLS(cert, key, fingerprint(der), self_signed=False)


def self_signed_tls(host: str, folder: Path | None = None, *, now: dt.datetime | None = None) -> ServerTLS:
    """The server's self-signed certificate for `host`: reused while valid for it, else made anew."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder = ensure_private_dir(folder or avctl_home() / "server")
    certfile, keyfile = folder / "tls-cert.pem", folder / "tls-key.pem"
    now = now or dt.datetime.now(dt.UTC)
    names = _names(host)
    if certfile.is_file() and keyfile.is_file():
        cert = x509.load_pem_x509_certificate(certfile.read_bytes())
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            san = x509.SubjectAlternativeName([])
        if cert.not_valid_after_utc - now > RENEW_BEFORE and set(names) <= set(san):
            return ServerTLS(certfile, keyfile, fingerprint(cert.public_bytes(serialization.Encoding.DER)), True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "avctl server"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "avctl (self-signed)")])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=SELF_SIGNED_DAYS))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    _write_private(keyfile, key_pem)
    _write_private(certfile, cert.public_bytes(serialization.Encoding.PEM))
    return ServerTLS(certfile, keyfile, fingerprint(cert.public_bytes(serialization.Encoding.DER)), True)


def _names(host: str) -> list[x509.GeneralName]:
    from cryptography import x509

    wanted: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    bare = host.strip("[]")
    if bare and bare not in ("localhost", "127.0.0.1", "0.0.0.0", "::"):
        try:
            wanted.append(x509.IPAddress(ipaddress.ip_address(bare)))
        except ValueError:
            wanted.append(x509.DNSName(bare))
    return wanted


def _write_private(path: Path, data: bytes) -> None:
    """Write a file readable by its owner only, replacing any old one atomically."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
