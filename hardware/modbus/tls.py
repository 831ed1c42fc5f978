"""Modbus/TCP Security: TLS contexts with mutual certificates, and throw-away certificates for trials.

Both ends verify the other's certificate against a CA (`verify_mode = CERT_REQUIRED`), so a client
without a certificate the CA signed gets no data. `make_certs` writes a fresh CA, a server and a
client certificate into a folder, for tests and for trying the virtual PLC; a plant uses its own PKI.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of one end: its certificate, its private key and the CA that signs the other end."""

    cert: Path
    key: Path
    ca: Path

    def check(self) -> None:
        """Raise `FileNotFoundError` naming the first file that does not exist."""
        for name in ("cert", "key", "ca"):
            path = Path(getattr(self, name))
            if not path.is_file():
                raise FileNotFoundError(f"TLS {name} file {path} does not exist")


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """A server context that demands a client certificate signed by `files.ca` (TLS 1.2 or later)."""
    files.check()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(files.cert, files.key)
    ctx.load_verify_locations(files.ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(files: TlsFiles) -> ssl.SSLContext:
    """A client context that presents `files.cert` and verifies the server's chain against `files.ca`.

    The host name is not checked (pymodbus's client wraps its socket without a server name); the
    chain is, so only a server the CA signed is accepted.
    """
    files.check()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(files.cert, files.key)
    ctx.load_verify_locations(files.ca)
    return ctx


@dataclass(frozen=True)
class CertSet:
    """A throw-away CA with a server and a client certificate it signed."""

    ca: Path
    server: TlsFiles
    client: TlsFiles


def make_certs(folder: str | Path, days: int = 30, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> CertSet:
    """Write a new CA (`ca.pem`), `server.pem`/`server.key` and `client.pem`/`client.key` into `folder`.

    Keys are ECDSA P-256; certificates are valid for `days` days and the server's names `hosts`.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name(
            [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "smartline"), x509.NameAttribute(NameOID.COMMON_NAME, cn)]
        )

    def build(cn: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: ec.EllipticCurvePrivateKey,
              ca: bool, usage: x509.ObjectIdentifier | None) -> x509.Certificate:  # fmt: skip
        b = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if usage is not None:
            b = b.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if usage == ExtendedKeyUsageOID.SERVER_AUTH:
            alt: list[x509.GeneralName] = []
            for h in hosts:
                try:
                    alt.append(x509.IPAddress(ipaddress.ip_address(h)))
                except ValueError:
                    alt.append(x509.DNSName(h))
            b = b.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        if ca:
            b = b.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
        return b.sign(signer, hashes.SHA256())

    def save(stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None) -> None:
        (out / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        if key is not None:
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            path = out / f"{stem}.key"
            path.write_bytes(pem)
            path.chmod(0o600)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = build("smartline test CA", ca_key, name("smartline test CA"), ca_key, True, None)
    save("ca", ca_cert, None)
    for stem, usage in (("server", ExtendedKeyUsageOID.SERVER_AUTH), ("client", ExtendedKeyUsageOID.CLIENT_AUTH)):
        key = ec.generate_private_key(ec.SECP256R1())
        save(stem, build(f"smartline {stem}", key, ca_cert.subject, ca_key, False, usage), key)
    ca = out / "ca.pem"
    return CertSet(
        ca, TlsFiles(out / "server.pem", out / "server.key", ca), TlsFiles(out / "client.pem", out / "client.key", ca)
    )
