"""Certificates for mutual-TLS tests: a private CA, a server certificate for 127.0.0.1 and a
client certificate, made with `cryptography` and written as PEM."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Pair:
    cert: str  # PEM
    key: str  # PEM


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _cert(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name | None,
    signer: ec.EllipticCurvePrivateKey | None,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer or subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(signer or key, hashes.SHA256())


@dataclass(frozen=True)
class Authority:
    """A private CA and what it signed: a server certificate (127.0.0.1) and a client one."""

    ca: str
    server: Pair
    client: Pair

    def files(self, folder: Path) -> dict[str, str]:
        """uvicorn's TLS options for the server side, asking for a client certificate."""
        paths = {}
        for name, text in (("ca", self.ca), ("cert", self.server.cert), ("key", self.server.key)):
            path = folder / f"{name}.pem"
            path.write_text(text)
            paths[name] = str(path)
        return paths


def authority(name: str = "relay test CA") -> Authority:
    ca_key = _key()
    ca = _cert(name, ca_key, None, None, ca=True)
    pairs = []
    for who, server in (("127.0.0.1", True), ("recording-relay", False)):
        key = _key()
        cert = _cert(who, key, ca.subject, ca_key, server=server)
        pairs.append(Pair(cert.public_bytes(serialization.Encoding.PEM).decode(), _pem_key(key)))
    return Authority(ca.public_bytes(serialization.Encoding.PEM).decode(), *pairs)
