"""Mutual TLS to a receiver: the `ssl.SSLContext` of a subscription's `tls` (its client
certificate and key, the private CA it trusts besides the public ones).

Python's `ssl` loads a certificate chain from files only: the PEM is written to a private
temporary folder (in memory where the machine has `/dev/shm`), loaded, and removed at once.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from pathlib import Path

import httpx

from service.domain.endpoint_auth import ClientTLS

MEMORY = "/dev/shm"


class BadTLS(ValueError):
    """The certificate, key or CA cannot be used; the message says which."""


def context(tls: ClientTLS) -> ssl.SSLContext:
    """The context a delivery to this receiver connects with (`BadTLS` if it cannot be made)."""
    made = httpx.create_ssl_context()
    if tls.ca:
        try:
            made.load_verify_locations(cadata=tls.ca)
        except (ssl.SSLError, ValueError) as error:
            raise BadTLS(f"ca: not a certificate the relay can trust ({error})") from None
    if tls.client_cert and tls.client_key:
        where = MEMORY if os.path.isdir(MEMORY) else None
        with tempfile.TemporaryDirectory(dir=where) as folder:
            cert, key = Path(folder) / "cert.pem", Path(folder) / "key.pem"
            for path, text in ((cert, tls.client_cert), (key, tls.client_key)):
                path.touch(mode=0o600)
                path.write_text(text)
            try:
                made.load_cert_chain(cert, key)
            except ssl.SSLError as error:
                raise BadTLS(
                    f"client_cert and client_key: not a certificate and its key ({error.reason})"
                ) from None
    return made
