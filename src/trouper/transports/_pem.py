"""One reading of a node's certificate and key files for every TLS transport.

tls:// and wss:// hand the files to ``ssl.SSLContext.load_cert_chain``, which
reads them itself; aioquic (quic://) wants parsed objects, and its own loader
is pickier (the key last, one combined file only). Two loaders would accept
different files, so this module decides once, by OpenSSL's rules, what a
``(certfile, keyfile)`` pair means:

- ``certfile``: PEM; its first certificate is the leaf, the ones after it
  the chain (intermediates), in file order. Keys, parameters or text in it
  are skipped, so one combined file (chain plus key, any order) works.
- the key: the first PEM private key in ``keyfile``, or in ``certfile`` when
  there is no keyfile (certfile=keyfile, the same combined file, works too);
  PKCS#8, PKCS#1 ("RSA PRIVATE KEY") or SEC1 ("EC PRIVATE KEY"), unencrypted.

It also checks up front what ssl reports only as "PEM lib", and what aioquic
would not notice until a peer fails the handshake: every problem (a missing
or empty file, no certificate, no key, an encrypted key, a key that does not
match the leaf) is a ``ConfigurationError`` naming the file and the problem,
worded the same whichever transport loads the files. An encrypted key is
refused rather than decrypted: ``TLSConfig`` has no password, and ssl would
otherwise prompt on the terminal of a node that may have none.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from trouper._errors import ConfigurationError

__all__ = ["Identity", "StrPath", "ephemeral_identity", "load_identity"]

StrPath = str | os.PathLike[str]

_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----", re.S)
# OpenSSL reads the leaf as an "X509_AUX" (which also takes OpenSSL's own
# TRUSTED CERTIFICATE form) and the chain as plain X509 (which skips it).
_LEAF_LABELS = frozenset({b"CERTIFICATE", b"X509 CERTIFICATE", b"TRUSTED CERTIFICATE"})
_CHAIN_LABELS = frozenset({b"CERTIFICATE", b"X509 CERTIFICATE"})
_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True, slots=True)
class Identity:
    """A node's certificate, its chain and its key, checked to belong together.

    aioquic takes the objects; ``load_into`` gives ssl the same files.
    """

    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    private_key: PrivateKeyTypes
    certfile: str
    keyfile: str  # where the key was found: certfile when no keyfile was given
    #: Certificate and key as PEM, for an identity made in memory (dev mode)
    #: that has no files: ``load_into`` hands them to ssl through a private
    #: temporary file, removed at once.
    pem: bytes = b""

    @property
    def der(self) -> bytes:
        """The certificate, DER-encoded (what a peer sees on the channel)."""
        return self.certificate.public_bytes(serialization.Encoding.DER)

    def load_into(self, context: ssl.SSLContext) -> None:
        """Load this identity into ``context``.

        ssl can only read files, so it reads the same ones again, already
        known to be good; the password callback makes sure it can never stop
        to prompt on the terminal should a file change in between.
        """
        if self.pem:
            with tempfile.TemporaryDirectory(prefix="trouper-tls-") as directory:
                path = os.path.join(directory, "identity.pem")
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(self.pem)
                context.load_cert_chain(path)
            return

        def no_password() -> NoReturn:
            _encrypted(self.keyfile)

        try:
            context.load_cert_chain(self.certfile, self.keyfile, password=no_password)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(
                f"cannot load TLS certificate {self.certfile} / key {self.keyfile}: {exc}"
            ) from exc


def load_identity(certfile: StrPath | None, keyfile: StrPath | None) -> Identity | None:
    """Read and check the files of a ``TLSConfig``; None when it has none.

    File I/O: callers cache the result (or the context built from it) per
    config, as it is done on the Trio loop.
    """
    if certfile is None:
        if keyfile is not None:
            raise ConfigurationError("TLSConfig.keyfile is set but certfile is not")
        return None
    cert_path = os.fspath(certfile)
    key_path = cert_path if keyfile is None else os.fspath(keyfile)
    leaf, chain = _certificates(cert_path, _blocks(cert_path, "certificate"))
    key = _private_key(key_path, _blocks(key_path, "private key"), combined=keyfile is None)
    try:
        leaf_key = leaf.public_key()
    except UnsupportedAlgorithm as exc:
        raise ConfigurationError(f"cannot load TLS certificate {cert_path}: {exc}") from exc
    if key.public_key().public_bytes(*_SPKI) != leaf_key.public_bytes(*_SPKI):
        raise ConfigurationError(
            f"cannot load TLS private key {key_path}: it does not match the certificate"
            f" in {cert_path}"
        )
    return Identity(leaf, tuple(chain), key, cert_path, key_path)


def ephemeral_identity() -> Identity:
    """A fresh self-signed certificate and key, in memory (``TLSConfig.dev()``)."""
    from trouper._certs import make_ephemeral

    certificate, key = make_ephemeral()
    pem = certificate.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return Identity(certificate, (), key, "<ephemeral>", "<ephemeral>", pem)


def _blocks(path: str, what: str) -> list[tuple[bytes, bytes]]:
    """The PEM blocks of a file, as (label, whole block) pairs."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot load TLS {what} {path}: {exc.strerror or exc}") from exc
    if not data.strip():
        raise ConfigurationError(f"cannot load TLS {what} {path}: the file is empty")
    return [(m.group(1), m.group(0)) for m in _BLOCK.finditer(data)]


def _certificates(
    path: str, blocks: list[tuple[bytes, bytes]]
) -> tuple[x509.Certificate, list[x509.Certificate]]:
    leaf_at = next((i for i, (label, _) in enumerate(blocks) if label in _LEAF_LABELS), None)
    if leaf_at is None:
        raise ConfigurationError(
            f"cannot load TLS certificate {path}: no PEM certificate in it"
            " (-----BEGIN CERTIFICATE-----)"
        )
    certificates = []
    for n, (label, block) in enumerate(blocks[leaf_at:]):
        if n > 0 and label not in _CHAIN_LABELS:
            continue
        try:
            if label == b"TRUSTED CERTIFICATE":
                certificates.append(_trusted_certificate(block))
            else:
                certificates.append(x509.load_pem_x509_certificate(block))
        except ValueError as exc:
            which = "the certificate" if n == 0 else f"chain certificate {len(certificates)}"
            raise ConfigurationError(
                f"cannot load TLS certificate {path}: {which} is not valid: {exc}"
            ) from exc
    return certificates[0], certificates[1:]


def _trusted_certificate(block: bytes) -> x509.Certificate:
    """OpenSSL's TRUSTED CERTIFICATE: a DER certificate, then its trust settings."""
    try:
        der = base64.b64decode(b"".join(block.split(b"\n")[1:-1]), validate=False)
    except binascii.Error as exc:
        raise ValueError(f"bad base64: {exc}") from exc
    if len(der) < 2 or der[0] != 0x30:  # a certificate is a DER SEQUENCE
        raise ValueError("not a DER certificate")
    size = der[1]
    end = 2 + size
    if size & 0x80:  # long form: the next (size & 0x7F) bytes are the length
        digits = size & 0x7F
        end = 2 + digits + int.from_bytes(der[2 : 2 + digits], "big")
    return x509.load_der_x509_certificate(der[:end])


def _private_key(
    path: str, blocks: list[tuple[bytes, bytes]], *, combined: bool
) -> PrivateKeyTypes:
    block = next((b for label, b in blocks if label.endswith(b"PRIVATE KEY")), None)
    if block is None:
        hint = " (append the key to it, or set TLSConfig.keyfile)" if combined else ""
        raise ConfigurationError(
            f"cannot load TLS private key {path}: no PEM private key in it{hint}"
        )
    if block.startswith(b"-----BEGIN ENCRYPTED") or b"Proc-Type: 4,ENCRYPTED" in block:
        _encrypted(path)
    try:
        return serialization.load_pem_private_key(block, password=None)
    except TypeError:  # "password was not given but the key is encrypted"
        _encrypted(path)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ConfigurationError(
            f"cannot load TLS private key {path}: not a valid private key: {exc}"
        ) from exc


def _encrypted(path: str) -> NoReturn:
    raise ConfigurationError(
        f"cannot load TLS private key {path}: it is encrypted, and trouper takes no key"
        f" passwords (decrypt it, e.g. `openssl pkey -in {path} -out key.pem`, and keep"
        " that file readable by the node's user only)"
    )
