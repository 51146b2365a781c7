"""Development certificates for mutual TLS (what ``trouper certs DIR`` writes).

A cluster with TLS needs a CA and one certificate per node. Making those with
openssl by hand is where most people give up on mutual TLS, so trouper makes
a throwaway set in one call. They are for development and tests: a
production cluster should use certificates from its own PKI.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from trouper._errors import ConfigurationError

__all__ = ["make_dev_certs", "make_ephemeral"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# Backdate validity a little: a peer whose clock is slightly behind ours would
# otherwise reject a certificate made a second ago as "not yet valid".
_CLOCK_SKEW = datetime.timedelta(hours=1)


def _write(path: Path, data: bytes, *, secret: bool = False) -> None:
    # Create key files 0600 from the start (not chmod afterwards), so the key
    # is never readable by others, even for an instant.
    mode = 0o600 if secret else 0o644
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)  # O_CREAT's mode is ignored when the file existed


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _san(hosts: Sequence[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for host in hosts:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            entries.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(entries)


def make_dev_certs(
    directory: Path,
    names: Sequence[str] = ("node",),
    hosts: Sequence[str] = ("127.0.0.1", "localhost", "::1"),
    days: int = 365,
    *,
    keep_ca: bool = False,
) -> Path:
    """Write a development CA and one certificate per node name; return ``directory``.

    Files written (the directory is created if needed)::

        ca.pem, ca-key.pem            the CA (self-signed)
        NAME.pem, NAME-key.pem        for each name: signed by the CA

    Keys are EC P-256, PEM (PKCS#8, unencrypted) and mode 0600. Each node
    certificate has the node name as its common name, ``hosts`` (IP
    addresses or DNS names) as subject alternative names, and both the
    serverAuth and clientAuth extended key usages, so the same file serves
    a listener and dials peers under mutual TLS. Load a set with
    ``trouper.transports.TLSConfig.from_dir(directory, name)``.

    Existing files are overwritten, CA included: certificates made by an
    earlier call stop verifying against the new CA. With ``keep_ca`` an
    existing ``ca.pem``/``ca-key.pem`` signs the new certificates instead, so
    a node's certificate can be rotated while its peers keep trusting it.
    """
    if days < 1:
        raise ConfigurationError(f"days must be at least 1, got {days}")
    if not names:
        raise ConfigurationError("make_dev_certs needs at least one name")
    for name in names:
        if not _NAME.match(name) or name in ("ca", "ca-key") or name.endswith("-key"):
            raise ConfigurationError(f"invalid certificate name {name!r}")
    if not hosts:
        raise ConfigurationError("make_dev_certs needs at least one host")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    not_before, not_after = now - _CLOCK_SKEW, now + datetime.timedelta(days=days)

    if keep_ca and (directory / "ca.pem").is_file() and (directory / "ca-key.pem").is_file():
        ca_key, ca_cert = _load_ca(directory)
        ca_name = ca_cert.subject
        ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    else:
        ca_key, ca_name, ca_ski = _new_ca(directory, not_before, not_after)
    for name in names:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=False,
                    crl_sign=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(_san(hosts), critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        _write(directory / f"{name}-key.pem", _key_pem(key), secret=True)
        _write(directory / f"{name}.pem", cert.public_bytes(serialization.Encoding.PEM))
    return directory


def _load_ca(directory: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = serialization.load_pem_private_key((directory / "ca-key.pem").read_bytes(), None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigurationError(f"{directory / 'ca-key.pem'} is not an EC key made by trouper")
    return key, x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())


def _new_ca(
    directory: Path, not_before: datetime.datetime, not_after: datetime.datetime
) -> tuple[ec.EllipticCurvePrivateKey, x509.Name, x509.SubjectKeyIdentifier]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "trouper development"),
            x509.NameAttribute(NameOID.COMMON_NAME, "trouper development CA"),
        ]
    )
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write(directory / "ca-key.pem", _key_pem(ca_key), secret=True)
    _write(directory / "ca.pem", ca_cert.public_bytes(serialization.Encoding.PEM))
    return ca_key, ca_name, ca_ski


def make_ephemeral(
    hosts: Sequence[str] = ("127.0.0.1", "localhost", "::1"), days: int = 30
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed certificate and its key, made in memory (``TLSConfig.dev()``).

    Nobody can verify it against a CA; it exists only so that the channel is
    encrypted and has a certificate the cookie handshake can bind to. The
    random serial and fresh key make every one unique.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "trouper development node")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_san(hosts), critical=False)
        .sign(key, hashes.SHA256())
    )
    return certificate, key
